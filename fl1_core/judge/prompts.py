"""Judge prompts: OpenAI chat messages for TwiFF-Bench scoring and the RL yes/no accuracy judge.

The user message is made of clearly delimited sections, one ``### <name>`` header line each, so that the local judge
server (and a human reading a log) can parse them back:

- TwiFF-Bench scoring: ``### Question``, ``### Reference reasoning``, ``### Ground-truth answer``,
  ``### Model reasoning``, ``### Model answer``. Reference reasoning images are interleaved where the reference chain
  has ``<rimage>`` / ``<image>`` markers (remaining images follow the section), as PNG data URIs; in text-only mode
  each image becomes ``[reference image k]``.
- Yes/no accuracy judge: ``### Question``, ``### Ground-truth answer``, ``### Model answer``; the system prompt asks
  to output only yes or no.

A line of section content that starts with ``###`` is indented by one space so it cannot fake a header.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fl1_core.judge.sanitize import sanitize_for_judge

__all__ = [
    "SEC_QUESTION",
    "SEC_REFERENCE",
    "SEC_GROUND_TRUTH",
    "SEC_MODEL_REASONING",
    "SEC_MODEL_ANSWER",
    "SECTION_NAMES",
    "TWIFF_SYSTEM_PROMPT",
    "YESNO_SYSTEM_PROMPT",
    "build_twiff_messages",
    "build_yesno_messages",
    "image_to_data_uri",
    "parse_sections",
    "message_text",
]

SEC_QUESTION = "Question"
SEC_REFERENCE = "Reference reasoning"
SEC_GROUND_TRUTH = "Ground-truth answer"
SEC_MODEL_REASONING = "Model reasoning"
SEC_MODEL_ANSWER = "Model answer"
SECTION_NAMES = (SEC_QUESTION, SEC_REFERENCE, SEC_GROUND_TRUTH, SEC_MODEL_REASONING, SEC_MODEL_ANSWER)

TWIFF_SYSTEM_PROMPT = (
    "You are an expert evaluator of video event prediction. You are given a question about a partly observed video, "
    "a reference reasoning chain (possibly with images of future frames), the ground-truth answer, and a model's "
    "reasoning and answer. Score two things on an integer scale from 0 to 5:\n"
    "- cot_score: how well the model's reasoning chain matches the reference reasoning (correct future events, "
    "correct order, no contradictions); 0 = unrelated or wrong, 5 = all reference events correctly reasoned.\n"
    "- answer_score: how well the model's answer matches the ground-truth answer; 0 = wrong, 5 = fully correct.\n"
    'Respond with a JSON object only: {"cot_score": <int 0-5>, "answer_score": <int 0-5>}.'
)

YESNO_SYSTEM_PROMPT = (
    "You are a strict grader. Decide whether the model answer means the same as the ground-truth answer to the "
    "question. Output only yes or no."
)

_IMAGE_MARKER = re.compile(r"<rimage>|<image>")
_HEADER_LIKE = re.compile(r"^(\s*)###", re.MULTILINE)


def _escape(text: str) -> str:
    return _HEADER_LIKE.sub(r" \1###", text.strip())


def image_to_data_uri(image: Any) -> str:
    """Encode an image (PNG/JPEG bytes, a path, a ``PIL.Image`` or an HxWx3 uint8 array) as a PNG data URI."""
    if isinstance(image, str) and image.startswith("data:image/"):
        return image
    if isinstance(image, (str, Path)):
        image = Path(image).read_bytes()
    if isinstance(image, (bytes, bytearray)):
        raw = bytes(image)
        if raw.startswith(b"\x89PNG\r\n\x1a\n"):
            return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
        from PIL import Image

        image = Image.open(io.BytesIO(raw))
    if not hasattr(image, "save"):
        from PIL import Image

        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image_part(image: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image_to_data_uri(image)}}


def _merge_text_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text" and merged and merged[-1]["type"] == "text":
            merged[-1] = _text_part(merged[-1]["text"] + part["text"])
        elif part["type"] != "text" or part["text"]:
            merged.append(part)
    return merged


def build_twiff_messages(
    question: str,
    reference_reasoning: str,
    ground_truth: str,
    model_reasoning: str,
    model_answer: str,
    reference_images: Sequence[Any] | None = None,
    *,
    include_images: bool = True,
) -> list[dict[str, Any]]:
    """Chat messages for TwiFF-Bench scoring (system rubric + one user message with the five sections).

    Model reasoning/answer are sanitised (latent spans → ``[visual imagination]``, special tokens removed); question
    ``<image>`` placeholders are dropped. With ``include_images`` and images given, the user content is a list of
    text and ``image_url`` parts; otherwise it is a single string.
    """
    images = list(reference_images or [])
    question_text = _escape(_IMAGE_MARKER.sub("", question or ""))
    pieces = _IMAGE_MARKER.split(reference_reasoning or "")
    parts: list[dict[str, Any]] = [_text_part(f"### {SEC_QUESTION}\n{question_text}\n\n### {SEC_REFERENCE}\n")]
    k = 0
    for i, piece in enumerate(pieces):
        parts.append(_text_part(_escape(piece)))
        if i < len(pieces) - 1:
            if k < len(images):
                parts.append(_image_part(images[k]) if include_images else _text_part(f" [reference image {k + 1}] "))
                k += 1
            else:
                parts.append(_text_part(" "))
    for j in range(k, len(images)):
        parts.append(_image_part(images[j]) if include_images else _text_part(f" [reference image {j + 1}]"))
    parts.append(
        _text_part(
            f"\n\n### {SEC_GROUND_TRUTH}\n{_escape(ground_truth or '')}\n\n"
            f"### {SEC_MODEL_REASONING}\n{_escape(sanitize_for_judge(model_reasoning or ''))}\n\n"
            f"### {SEC_MODEL_ANSWER}\n{_escape(sanitize_for_judge(model_answer or ''))}\n\n"
            'Return only the JSON object {"cot_score": <int 0-5>, "answer_score": <int 0-5>}.'
        )
    )
    parts = _merge_text_parts(parts)
    content: Any = parts[0]["text"] if len(parts) == 1 else parts
    return [{"role": "system", "content": TWIFF_SYSTEM_PROMPT}, {"role": "user", "content": content}]


def build_yesno_messages(question: str, ground_truth: str, model_answer: str) -> list[dict[str, Any]]:
    """Chat messages for the RL accuracy judge (docs/PAPER.md#rewards): output only yes or no."""
    text = (
        f"### {SEC_QUESTION}\n{_escape(_IMAGE_MARKER.sub('', question or ''))}\n\n"
        f"### {SEC_GROUND_TRUTH}\n{_escape(ground_truth or '')}\n\n"
        f"### {SEC_MODEL_ANSWER}\n{_escape(sanitize_for_judge(model_answer or ''))}\n\n"
        "Does the model answer match the ground-truth answer? Output only yes or no."
    )
    return [{"role": "system", "content": YESNO_SYSTEM_PROMPT}, {"role": "user", "content": text}]


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message (string content, or its text parts joined by newlines; images are skipped)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


_SECTION_HEADER = re.compile(
    r"^### (" + "|".join(re.escape(n) for n in SECTION_NAMES) + r")[ \t]*$", re.MULTILINE
)


def parse_sections(text: str) -> dict[str, str]:
    """Parse ``### <name>`` sections (known names only) back from a judge prompt: ``{name: content}``.

    The content of the last section stops before a trailing instruction paragraph (the final blank-line separated
    block that starts with "Return only" or "Does the model answer").
    """
    headers = list(_SECTION_HEADER.finditer(text))
    out: dict[str, str] = {}
    for i, h in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[h.end() : end]
        if i + 1 == len(headers):
            body = re.split(r"\n\n(?=Return only|Does the model answer)", body)[0]
        out[h.group(1)] = body.strip()
    return out
