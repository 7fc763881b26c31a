"""The two model passes of curation: teacher-forced likelihood of the reference, and sampled rollouts (scored by
the answer rule, free-form answers by the judge when one is configured)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from .. import answers
from .. import tokens as T
from ..answers import answer_span, reference_letter
from ..data.collator import PromptExample, encode_texts, render_prompt
from ..data.prompt_inputs import build_prompt_inputs
from ..data.records import SFTRecord
from ..decoding import generate_with_latents
from ..losses import token_logprobs
from .config import CurationConfig

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------ correctness
def is_mcq(record: SFTRecord) -> bool:
    """MCQ record: ``meta.format == "mcq"`` when present, else a single option letter as the answer."""
    fmt = (record.meta or {}).get("format")
    if fmt is not None:
        return str(fmt).lower() in ("mcq", "multiple choice", "multiple-choice")
    return reference_letter(record.answer) is not None


#: rollout answers count when they contain the reference event on word boundaries (free-form); MCQ: the strict letter
ROLLOUT_ANSWER_RULE = "contains"


def rollout_correct(text: str, reference: str, mcq: bool) -> bool:
    """:func:`fl1_core.answers.is_correct` under :data:`ROLLOUT_ANSWER_RULE`; no answer span → wrong."""
    return answers.is_correct(text, reference, mcq=mcq, rule=ROLLOUT_ANSWER_RULE)


# ------------------------------------------------------------------------------------------------------ model passes
def _device(model: Any) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    return params[0].device if params else torch.device("cpu")


def _processor_inputs(processor: Any, texts: list[str], examples: Sequence[PromptExample],
                      question_max_pixels: int | None) -> dict:
    """Processor batch for full chat texts (:func:`fl1_core.data.collator.encode_texts`)."""
    return encode_texts(processor, texts, list(examples), question_max_pixels)


def _target_length(tokenizer: Any, text: str, target_start: int) -> tuple[int, list[int]]:
    """Number of tokens of ``text`` that cover a character at or after ``target_start`` (offsets of the fast
    tokenizer; a token straddling the boundary counts as a target token)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return sum(1 for start, end in enc["offset_mapping"] if end > target_start and end > start), enc["input_ids"]


@torch.no_grad()
def _likelihood_pass(
    model: Any, processor: Any, prompts: Sequence[PromptExample], answers: Sequence[str], config: CurationConfig
) -> list[tuple[float, int]]:
    """One teacher-forced forward over ``prompts``; per row (mean target log-prob, target token count)."""
    tok = processor.tokenizer
    system = T.system_prompt(config.system_prompt)
    texts, n_target, tails = [], [], []
    for ex, answer in zip(prompts, answers):
        head = render_prompt(processor, system, len(ex.question_images), ex.question_video is not None, ex.question)
        if config.likelihood_scope == "answer":
            head, target = head + T.ANSWER_OPEN, answer
        else:
            target = f"{T.ANSWER_OPEN}{answer}{T.ANSWER_CLOSE}"
        n, ids = _target_length(tok, head + target, len(head))
        if n < 1:
            raise ValueError(f"record {ex.id!r}: field 'answer': the reference {answer!r} has no tokens to score")
        texts.append(head + target)
        n_target.append(n)
        tails.append(ids[-n:])
    inputs = _processor_inputs(processor, texts, prompts, config.question_max_pixels)
    device = _device(model)
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    input_ids, mask = inputs["input_ids"], inputs["attention_mask"]
    hidden = model(**inputs, hidden_only=True).hidden_states  # [B, L, d]: no [B, L, V] logits for 2B rows
    batch, length = input_ids.shape
    m = max(n_target)
    # row end = one past the last real token (left padding: L; right padding: the row length)
    positions = torch.arange(length, device=device).expand(batch, -1)
    end = torch.where(mask.bool(), positions + 1, torch.zeros_like(positions)).max(1).values  # [B]
    j = torch.arange(m, device=device)
    tgt_pos = (end.unsqueeze(1) - m + j).clamp(min=1)  # [B, m]
    n = torch.tensor(n_target, device=device)
    valid = j.unsqueeze(0) >= (m - n).unsqueeze(1)
    for b in range(batch):  # the processor's ids must end with the tokenizer's target ids (image pads come before)
        got = input_ids[b, int(end[b]) - n_target[b] : int(end[b])].tolist()
        if got != tails[b]:
            raise RuntimeError(f"record {prompts[b].id!r}: target tokens differ between tokenizer and processor")
    # only the m target positions of each row go through the LM head, chunk-wise
    pred_hidden = torch.gather(hidden, 1, (tgt_pos - 1).unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    tok_logp, _ = token_logprobs(pred_hidden, model.base.lm_head.weight, torch.gather(input_ids, 1, tgt_pos))
    mean = (tok_logp * valid).sum(1) / n
    return [(float(v), int(k)) for v, k in zip(mean.tolist(), n_target)]


def _rollout_pass(
    model: Any, processor: Any, prompts: Sequence[PromptExample], answers: Sequence[str], mcq: Sequence[bool],
    config: CurationConfig, seed: int,
) -> list[tuple[int, list[str]]]:
    """n sampled rollouts per prompt in ONE ``generate_with_latents`` call (each prompt prefilled once, shared by its
    n samples); per prompt (#correct, texts)."""
    n = config.n_rollouts
    inputs = build_prompt_inputs(processor, list(prompts), config.system_prompt, config.question_max_pixels)
    out = generate_with_latents(
        model, inputs, max_new_tokens=config.max_new_tokens, num_samples=n, do_sample=True,
        temperature=config.temperature, top_p=config.top_p, seed=seed, tokenizer=processor.tokenizer,
    )
    result = []
    for i, (answer, is_mc) in enumerate(zip(answers, mcq)):
        texts = list(out.texts[i * n : (i + 1) * n])
        result.append((sum(rollout_correct(t, answer, is_mc) for t in texts), texts))
    return _judge_free_form(result, prompts, answers, mcq, config)


_warned_rule_only = False


def _judge_free_form(result: list[tuple[int, list[str]]], prompts: Sequence[PromptExample], answers: Sequence[str],
                     mcq: Sequence[bool], config: CurationConfig) -> list[tuple[int, list[str]]]:
    """Free-form rollouts the rule rejected but that have an answer go to the yes/no judge (``config.judge="env"``);
    without a judge they stay wrong and a warning says so once."""
    global _warned_rule_only
    pending = [(i, k) for i, (is_mc, (_, texts)) in enumerate(zip(mcq, result)) if not is_mc
               for k, t in enumerate(texts) if answer_span(t) and not rollout_correct(t, answers[i], False)]
    if not pending:
        return result
    if config.judge == "none":
        if not _warned_rule_only:
            logger.warning("curation (rollouts): free-form answers are checked by the containment rule only; real "
                           "sentence answers need the judge (CurationConfig.judge='env' with $FL1_JUDGE_*)")
            _warned_rule_only = True
        return result
    from ..judge.client import judge_many
    from ..judge.config import JudgeConfig, YesNoJudgeItem

    items = [YesNoJudgeItem(doc_id=f"{prompts[i].id}#{k}", question=prompts[i].question, ground_truth=answers[i],
                            model_answer=answer_span(result[i][1][k]) or "") for i, k in pending]
    verdicts, _ = judge_many(items, JudgeConfig.from_env(), progress=False, desc="curation judge")
    extra = [0] * len(result)
    for (i, _), res in zip(pending, verdicts):
        extra[i] += int(res.get("judge_error") is None and res.get("verdict") is True)
    return [(c + extra[i], texts) for i, (c, texts) in enumerate(result)]
