"""Visual-gain curation (docs/PAPER.md#curation, stage 1). No code was released; this is the workbook's design.

For every candidate SFT record the *base* model is probed twice:

* text-only: the question frames and the question (:func:`fl1_core.data.examples.text_only_prompt`) → ``P_t``;
* hinted: the same plus the record's future frames as extra images (:func:`~fl1_core.data.examples.hinted_prompt`)
  → ``P_v``.

Visual gain ``g = P_v − P_t`` ∈ [−1, 1]. Two scoring modes:

* ``rollouts`` (the paper's): ``n`` sampled rollouts per probe; ``P = (1/n) Σ_i correct(rollout_i)`` where
  ``correct`` reads the last ``<answer>…</answer>`` span: MCQ → option-letter equality (strict extraction);
  free-form → normalised equality, or the normalised reference sentence occurring in the answer on word boundaries.
* ``likelihood`` (fast): teacher-forced probability of the reference, length-normalised:
  ``P = exp((1/|y|) Σ_j log p(y_j | prompt, ctx, y_<j))`` — the geometric-mean token probability of
  ``y`` = the answer text after a forced ``ctx = "<answer>"`` (scope ``"answer"``, default) or of
  ``y = "<answer>{answer}</answer>"`` with no context (scope ``"tagged"``).

Selection (:func:`select_by_gain`), in this order of reasons: ``easy`` (``P_t ≥ easy_threshold``), ``negative_gain``
(``g < 0``), ``zero_gain`` (``g == 0`` when ``drop_zero_gain``), ``below_min_gain`` (``g < min_gain``), then the
remaining candidates are ranked by (−g, id) and the first K are kept (``top_k``, or ``floor(keep_fraction · N)``
with N = number of scored candidates; neither = keep all eligible), the rest are ``beyond_top_k``.

Scores are appended per record to a JSONL file as soon as they are computed; a restart reads it back and never
rescores an id. Each row carries a fingerprint of the scoring settings and of the model weights; a scores file from a
different setting or base model is refused instead of being silently mixed. Batches are fixed chunks of the full
candidate list (chunk i = records[i·B:(i+1)·B]) with a per-chunk seed, so an interrupted and resumed run reproduces an
uninterrupted one (a chunk interrupted half-way is completed with only its missing ids).

Paths: the curated file holds the original JSON rows, untouched, when it is written next to the source file;
elsewhere, relative ``video`` / image paths are rewritten to absolute paths (resolved like
:func:`~fl1_core.data.formats.load_sft_records` does: against ``video_root`` or the source file's folder).

One module per step: config (settings, scores, decisions), probes (the model passes), scoring (P_t, P_v, g, the
resumable scores file), selection (the reasons, summary, curated rows), pipeline (``curate``).
"""

from .config import REASONS, CurationConfig, CurationResult, Decision, GainScore
from .pipeline import curate
from .probes import is_mcq
from .scoring import record_digest, score_visual_gain, scoring_fingerprint
from .selection import answer_stratum, select_by_gain, summarize

__all__ = [
    "REASONS",
    "CurationConfig",
    "CurationResult",
    "Decision",
    "GainScore",
    "answer_stratum",
    "curate",
    "is_mcq",
    "record_digest",
    "score_visual_gain",
    "scoring_fingerprint",
    "select_by_gain",
    "summarize",
]
