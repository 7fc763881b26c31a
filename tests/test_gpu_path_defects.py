"""The smaller GPU-path defects, each shown on a CPU: fps 0, readers before fork, sharded validation,
chunked curation scoring, device moves in the t-SNE states."""

from __future__ import annotations

import pytest
import torch

from fl1_core.data import frames
from fl1_core.data.formats import load_sft_records
from fl1_core.data.frames import VideoError, VideoInfo, load_video_clip, read_video_info

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(small_world):
    return small_world


@pytest.fixture
def zero_fps(monkeypatch):
    """Every video opened from now on reports fps 0 (as some containers do)."""
    real = frames._open_entry

    def opened(p):
        e = real(p)
        e.info = VideoInfo(num_frames=e.info.num_frames, fps=0.0, width=e.info.width, height=e.info.height)
        return e

    frames.clear_reader_cache()
    monkeypatch.setattr(frames, "_open_entry", opened)
    yield
    frames.clear_reader_cache()


def test_fps_zero_is_rejected_naming_the_record_not_crashing_the_processor(world, zero_fps):
    res = load_sft_records(world / "sft.json", on_error="skip")
    assert not res.records and res.rejects
    first = res.rejects[0]
    assert first.record_id.startswith("world-sft-") and first.field == "video" and "fps 0" in first.reason
    path = world / "videos" / "clip_00000.mp4"
    with pytest.raises(VideoError, match="no frame rate"):
        load_video_clip(path, num_frames=4)


def test_validation_is_sharded_over_processes(world, tiny):
    from fl1_core.data.collator import SFTCollator
    from fl1_core.sft import ExampleSource, validate_examples

    model, processor = tiny
    records = list(load_sft_records(world / "sft.json").records)[:7]
    collator = SFTCollator(processor, model.latent_config, mode="latent")
    source = ExampleSource(records, "latent", cache=False)
    opened = []
    real = source.__class__.__getitem__
    source.__class__.__getitem__ = lambda self, i: (opened.append(i), real(self, i))[1]
    try:
        shards = [validate_examples(source, collator, rank, 2) for rank in (0, 1)]
    finally:
        source.__class__.__getitem__ = real
    assert shards[0][0] == [0, 2, 4, 6] and shards[1][0] == [1, 3, 5]
    assert sorted(opened) == list(range(7))  # each example decoded once over both processes


def test_readers_are_dropped_before_dataloader_workers_fork(world, tiny, monkeypatch):
    from fl1_core.data.collator import SFTCollator
    from fl1_core.sft import ExampleSource, SFTConfig
    from fl1_core.sft.data import _batch_stream, _fresh_readers

    read_video_info(world / "videos" / "clip_00000.mp4")
    assert frames._CACHE._entries  # validation left an open reader in the parent
    _fresh_readers(0)
    assert not frames._CACHE._entries

    model, processor = tiny
    records = list(load_sft_records(world / "sft.json").records)[:4]
    read_video_info(world / "videos" / "clip_00000.mp4")
    cleared = []
    monkeypatch.setattr("fl1_core.sft.data.clear_reader_cache", lambda: (cleared.append(len(frames._CACHE._entries)),
                                                                     frames.clear_reader_cache()))
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, dataloader_workers=1,
                              progress_bar=False)
    collator = SFTCollator(processor, model.latent_config, mode="latent")
    stream = _batch_stream(ExampleSource(records, "latent", cache=False), collator, cfg, 0, 1, 2, 1, 0)
    batch = next(stream)
    stream.close()
    assert batch["input_ids"].shape[0] == 2
    assert cleared and cleared[0] >= 1  # the parent's readers were closed before the worker started


def test_curation_scores_target_positions_without_full_logits(world, tiny, tmp_path, monkeypatch):
    import fl1_core.curation as curation
    from fl1_core.curation import CurationConfig, score_visual_gain

    model, processor = tiny
    records = list(load_sft_records(world / "sft.json").records)[:3]
    cfg = CurationConfig(mode="likelihood", batch_size=3)
    head_calls = []
    handle = model.base.lm_head.register_forward_hook(lambda m, a, o: head_calls.append(tuple(o.shape)))
    try:
        chunked = score_visual_gain(model, processor, records, cfg, tmp_path / "a.jsonl", progress=False)
    finally:
        handle.remove()
    assert head_calls == []  # no [B, L, V] logits: only the target positions met the LM head (chunk-wise)

    def full(hidden, weight, targets, **kw):  # the old computation: every logit of the gathered positions at once
        z = torch.nn.functional.log_softmax((hidden @ weight.T).float(), -1)
        return z.gather(-1, targets.unsqueeze(-1)).squeeze(-1), None

    monkeypatch.setattr(curation.probes, "token_logprobs", full)
    reference = score_visual_gain(model, processor, records, cfg, tmp_path / "b.jsonl", progress=False)
    for a, b in zip(chunked, reference):
        assert a.p_text == pytest.approx(b.p_text, rel=1e-5) and a.p_hint == pytest.approx(b.p_hint, rel=1e-5)


def test_state_groups_move_inputs_to_the_model_device(world, tiny, monkeypatch):
    from fl1_core.data.examples import hinted_prompt
    from fl1_core.evaluation.states import collect_state_groups

    model, processor = tiny
    seen = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kw: seen.append({k: v.device for k, v in kw.items() if torch.is_tensor(v)}), with_kwargs=True)
    records = list(load_sft_records(world / "sft.json").records)[:2]
    prompts = [hinted_prompt(r) for r in records]
    try:
        groups = collect_state_groups(model, processor, prompts, max_new_tokens=4, batch_size=2)
    finally:
        handle.remove()
    assert seen and all(d == model.device for s in seen for d in s.values())
    assert groups["prompt text"].shape[1] == model.config.text_config.hidden_size
