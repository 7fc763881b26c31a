"""SFT data: examples by index, validation sharded over processes and the batch stream (in the seeded order of
:mod:`fl1_core.data.order`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence

from torch.utils.data import Dataset

from ..data.collator import CollateError, SFTCollator, SFTExample
from ..data.examples import sft_example
from ..data.counterfactual_reading import CounterfactualReadings
from ..data.records import Reject, SFTRecord
from ..data.frames import clear_reader_cache
from ..data.order import micro_batch_indices

from .config import Mode, SFTConfig

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class ExampleSource(Dataset):
    """SFT examples by index, from SFT records (decoded lazily, optionally cached) or from ready ``SFTExample``\\ s.

    ``mode="text"`` never decodes future frames (the text-only baseline keeps the thoughts, drops the frames).
    """

    def __init__(self, items: Sequence[SFTRecord] | Sequence[SFTExample], mode: Mode, cache: bool = True):
        self.items = list(items)
        self.mode = mode
        self.cache: dict[int, SFTExample] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def item_id(self, index: int) -> str:
        return str(self.items[index].id)

    def __getitem__(self, index: int) -> SFTExample:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        item = self.items[index]
        if isinstance(item, SFTExample):
            ex = item if self.mode == "latent" else dataclasses.replace(item, future_frames=[])
        else:
            ex = sft_example(item, with_future=self.mode == "latent")
        if self.cache is not None:
            self.cache[index] = ex
        return ex

    def subset(self, indices: Sequence[int]) -> "ExampleSource":
        out = ExampleSource([self.items[i] for i in indices], self.mode, cache=self.cache is not None)
        if self.cache is not None:
            out.cache = {j: self.cache[i] for j, i in enumerate(indices) if i in self.cache}
        return out

    def fingerprint(self) -> str:
        """sha256 over the content of every item in order (records: fields; examples: text and image pixels)."""
        h = hashlib.sha256(self.mode.encode())
        for item in self.items:
            if isinstance(item, SFTExample):
                h.update(json.dumps([item.id, item.question, item.thoughts, item.answer]).encode())
                frames = item.question_images + (item.future_frames if self.mode == "latent" else [])
                for img in frames:
                    h.update(f"{img.size}{img.mode}".encode())
                    h.update(img.tobytes())
            else:
                fields = [item.id, item.video, list(item.image), list(item.reasoning_image), item.human, item.gpt,
                          item.answer, list(item.image_paths), list(item.reasoning_image_paths)]
                h.update(json.dumps(fields).encode())
        return h.hexdigest()


_FIELD_RE = re.compile(r"field '([^']+)'")


def validate_examples(source: ExampleSource, collator: SFTCollator, rank: int = 0, processes: int = 1
                      ) -> tuple[list[int], list[Reject]]:
    """Decode the examples ``i ≡ rank (mod processes)`` once and apply the collator's checks; returns (good
    indices, rejects) of that shard. :func:`train_sft` gathers the shards, so each process opens 1/P of the videos."""
    good, rejects = [], []
    for i in range(rank, len(source), processes):
        try:
            ex = source[i]
            collator.check(ex)  # the collator's own per-example rules
            good.append(i)
        except Exception as err:  # noqa: BLE001 - any decoding/check failure makes the record a reject
            if source.cache is not None:
                source.cache.pop(i, None)
            m = _FIELD_RE.search(str(err))
            reason = str(err) if isinstance(err, CollateError) else f"{type(err).__name__}: {err}"
            rejects.append(Reject(source.item_id(i), m.group(1) if m else "<frames>", reason, position=i, source="sft"))
    return good, rejects


def _fresh_readers(worker_id: int) -> None:
    """DataLoader worker start: drop any decord reader inherited from the parent (each worker opens its own)."""
    clear_reader_cache()


def _batch_stream(source: ExampleSource, collator: SFTCollator, cfg: SFTConfig, start: int, total: int,
                  steps_per_epoch: int, processes: int, rank: int):
    """Collated micro-batches from step ``start`` on, epoch by epoch (a DataLoader with workers if configured)."""
    from torch.utils.data import DataLoader

    step = start
    while step < total:
        end = min(total, (step // steps_per_epoch + 1) * steps_per_epoch)
        epoch_source = (CounterfactualReadings(source, cfg.reading_swap_p, cfg.seed, step // steps_per_epoch)
                        if cfg.reading_swap_p > 0 else source)
        index_lists = [
            idx for s in range(step, end)
            for idx in micro_batch_indices(cfg.seed, len(source), s, steps_per_epoch, cfg.per_device_batch_size,
                                           cfg.gradient_accumulation_steps, processes, rank)
        ]
        if cfg.dataloader_workers > 0:
            clear_reader_cache()  # decord readers opened by validation must not be shared with forked workers
            yield from DataLoader(epoch_source, batch_sampler=index_lists, collate_fn=collator,
                                  num_workers=cfg.dataloader_workers, worker_init_fn=_fresh_readers)
        else:
            for idx in index_lists:
                yield collator([epoch_source[i] for i in idx])
        step = end


