"""Diagnostic: can a model *read* multiple-choice options?

Answering a world MCQ means finding, among four near-identical option lines, the one that says what the reasoning
concluded and writing its letter. This probe isolates that look-up, in the chat format the world base is trained
and used in (no system prompt):

    user:      A. <option>\\nB. <option>\\nC. <option>\\nD. <option>\\nWhich option says: <one of them>?
    assistant: <answer>B</answer>

It is scored on the option sets of the world's ``heldout_mcq.jsonl`` (test clips), greedily: the first letter the
model writes inside ``<answer>`` (:func:`fl1_core.pretrain.evaluate.lookup_accuracy`). Chance is 25 %.

    python benchmarks/option_lookup_probe.py --init fl1_core/assets/world_base --steps 0     # score the shipped base
    python benchmarks/option_lookup_probe.py --world data/world --steps 2000 [--hidden 128 --layers 4]  # train alone
    # architecture / tokenizer probes of a fresh model: --heads 8, --qk-scale 2, --pretokenizer phrase --vocab 4096

With ``--steps > 0`` the model (``--init`` or a fresh tiny one) is trained on look-up prompts of the pretraining
stream (:class:`fl1_core.pretrain.TaskSampler`, task ``lookup``) and scored every ``--eval-every`` steps. Prints one
line per evaluation: step, training loss, held-out look-up accuracy with its Wilson 95 % interval, seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from fl1_core.data.collator import SFTCollator
    from fl1_core.pretrain import TaskSampler, lookup_accuracy
    from fl1_core.pretrain.evaluate import read_heldout

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--init", default=None, help="a Future-L1 checkpoint to start from (default: fresh tiny model)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=None, help="attention heads (default max(4, hidden / 32))")
    ap.add_argument("--qk-scale", type=float, default=1.0,
                    help="initial q_norm / k_norm weight of a fresh model (attention logits scale with its square)")
    ap.add_argument("--pretokenizer", default="word", help="word (Qwen's split) or phrase (see fl1_core.tiny)")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-words", type=float, default=0.0,
                    help="share of training prompts whose options are random word strings (a generic matching task)")
    ap.add_argument("--verify", action="store_true",
                    help="answer after checking every option in turn ('A. <text>: no. B. <text>: yes. ...')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.init:
        from fl1_core.model import load_future_l1

        model, processor = load_future_l1(args.init)
    else:
        from fl1_core.tiny import TinySizes, build_tiny_future_l1

        heads = args.heads or max(4, args.hidden // 32)
        sizes = TinySizes(vocab_size=args.vocab, pretokenizer=args.pretokenizer, hidden_size=args.hidden,
                          intermediate_size=3 * args.hidden, num_hidden_layers=args.layers, num_attention_heads=heads,
                          num_key_value_heads=heads // 2, head_dim=args.hidden // heads)
        model, processor = build_tiny_future_l1(seed=args.seed, sizes=sizes)
        if args.qk_scale != 1.0:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "language_model" in name and (".q_norm." in name or ".k_norm." in name):
                        p.fill_(args.qk_scale)
    held = read_heldout(Path(args.world))
    print(f"parameters {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M; {len(held)} held-out option sets",
          flush=True)
    t0 = time.perf_counter()

    def report(step: int, loss: float | None) -> None:
        res = lookup_accuracy(model, processor, held, max_new_tokens=96 if args.verify else 6)
        lo, hi = res["ci95"]
        shown = "–" if loss is None else f"{loss:.3f}"
        print(f"step {step} loss {shown} held-out look-up {res['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] "
              f"(n={res['n']}, {time.perf_counter() - t0:.0f} s)", flush=True)

    report(0, None)
    if args.steps <= 0:
        return
    sampler = TaskSampler(args.seed)
    collator = SFTCollator(processor, model.latent_config, system_prompt="none", mode="text", allow_text_only=True)
    vocab = sorted({w for ex in (sampler.item("lookup", i).example for i in range(400)) for w in ex.question.split()
                    if w.isalpha() and w.islower()})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    model.train()
    for step in range(1, args.steps + 1):
        examples = [sampler.item("lookup", step * args.batch + j).example for j in range(args.batch)]
        if args.random_words:
            rng = np.random.default_rng([args.seed, 7, step])
            examples = [random_word_lookup(rng, vocab) if rng.random() < args.random_words else ex for ex in examples]
        if args.verify:
            examples = [verified(ex) for ex in examples]
        batch = collator(examples)
        batch.pop("ids")
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            report(step, loss.item())


# ---------------------------------------------------------------------------------------- probe-only prompt variants
def random_word_lookup(rng: np.random.Generator, vocab: list[str], id_prefix: str = "words"):
    """A look-up over four options that are random strings of 3–8 words from ``vocab``, each pair differing in one
    to three words: the matching skill without the world's phrase statistics."""
    from fl1_core.data.collator import SFTExample
    from fl1_core.data.world.questions import LETTERS
    from fl1_core.data.world.options import options_block
    from fl1_core.pretrain.tasks import LOOKUP_QUESTION

    base = [vocab[int(i)] for i in rng.integers(0, len(vocab), int(rng.integers(3, 9)))]
    texts: list[str] = []
    while len(texts) < 4:
        words = list(base)
        for pos in rng.choice(len(words), int(rng.integers(1, min(3, len(words)) + 1)), replace=False):
            words[int(pos)] = vocab[int(rng.integers(0, len(vocab)))]
        text = " ".join(words)
        if text not in texts:
            texts.append(text)
    options = dict(zip(LETTERS, texts))
    asked = LETTERS[int(rng.integers(0, 4))]
    question = f"{options_block(options)}\n{LOOKUP_QUESTION.format(options[asked])}"
    return SFTExample(f"{id_prefix}-{int(rng.integers(0, 2**31))}", question, [], asked)


def option_check(options: dict[str, str], said: str) -> str:
    """The options checked in turn against ``said``: 'A. <text>: no. B. <text>: yes. …' (reading by verification)."""
    return " ".join(f"{k}. {v}: {'yes' if v == said else 'no'}." for k, v in options.items())


def verified(example):
    """A look-up example answered by checking each option in turn (recall examples are left as they are)."""
    import dataclasses

    if len(example.answer) != 1:
        return example
    *lines, asked = example.question.split("\n")
    options = dict(line.split(". ", 1) for line in lines)
    said = asked.removeprefix("Which option says: ").removesuffix("?")
    return dataclasses.replace(example, thoughts=[option_check(options, said)])


if __name__ == "__main__":
    main()
