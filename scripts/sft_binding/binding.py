"""Teacher-forced letter binding: how often a checkpoint writes the right letter after the gold conclusion.

    binding = (1/N) Σ_i 1[argmax_{L ∈ A..D} logit(L | question_i, gold thoughts_i up to "…which is option") = answer_i]

``--form conclude`` feeds only the concluding thought, ``--form reason`` the full gold text reasoning first.
``--swap-head`` puts the world base's ``lm_head`` into the checkpoint first (is the loss in the head or below it?).

    python scripts/sft_binding/binding.py CKPT [CKPT …] [--n 160] [--form conclude reason] [--swap-head]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from fl1_core.data.collator import SFTCollator
from fl1_core.model import load_future_l1
from fl1_core.world_base import WORLD_BASE_DIR

from stream_questions import stream_questions


def letter_binding(model, processor, examples, batch_size: int = 16) -> dict:
    """Accuracy and letter counts of the first option letter of each response, teacher-forced."""
    model.eval()
    collator = SFTCollator(processor, model.latent_config, mode="text", on_error="raise", allow_text_only=True)
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(tok.tokenize(" " + letter))[-1] for letter in "ABCD"]
    picks = []
    for start in range(0, len(examples), batch_size):
        part = examples[start : start + batch_size]
        batch = collator(part)
        batch.pop("ids", None)
        with torch.no_grad():
            logits = model(**batch).logits
        for row, labels in enumerate(batch["labels"]):
            pos = next(p for p in range(1, labels.shape[0]) if int(labels[p]) in ids)  # "… which is option X"
            picks.append("ABCD"[int(logits[row, pos - 1, ids].argmax())])
    hits = sum(p == ex.answer for p, ex in zip(picks, examples))
    return {"n": len(examples), "binding": hits / len(examples), "letters": {x: picks.count(x) for x in "ABCD"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--form", nargs="+", default=["conclude", "reason"], choices=["conclude", "reason"])
    ap.add_argument("--swap-head", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    full = stream_questions(args.seed, args.n, "reason", stream=5)
    forms = {"reason": full, "conclude": [dataclasses.replace(ex, thoughts=ex.thoughts[-1:], future_frames=[])
                                          for ex in full]}
    head = load_future_l1(WORLD_BASE_DIR)[0].base.lm_head.weight.detach().clone() if args.swap_head else None
    for ckpt in args.checkpoints:
        model, processor = load_future_l1(ckpt)
        if head is not None:
            with torch.no_grad():
                model.base.lm_head.weight.copy_(head)
        for form in args.form:
            print(ckpt, form, letter_binding(model, processor, forms[form]), flush=True)


if __name__ == "__main__":
    main()
