"""The curricula of world pretraining: training examples drawn from a procedural stream of world clips.

Every example comes from a freshly simulated clip (``sample_clip`` with ``default_rng([seed, STREAM, index])``), so
no two steps see the same clip and the stream never touches the world's own train/test clips (their seeds use other
streams). Frames are rendered in numpy and passed through the same yuv420p conversion the world's mp4s use, so the
pixels match decoded clips closely without an encode/decode per example.

Tasks (``TASKS``), each a chat turn the base must answer inside ``<answer>…</answer>``:

* ``scene``  — one frame → the objects from left to right, their support, and the light ("seeing");
* ``motion`` — two consecutive pool frames → how each object moves (the sentence every THOUGHT 0 starts with);
* ``change`` — two pool frames → the events between them, or "nothing happened";
* ``lookup`` — four options (text only) + "Which option says: …?" → the letter ("reading");
* ``qa``     — a world question of any kind about the observed frames, MCQ or free-form, answered with the text
  reasoning of the world's trajectories (``reason``), directly (``direct``), or with the future frames given as
  extra images (``hinted``);
* ``video``  — the same questions over the observed prefix as a video (FutureBench's prompt form);
* ``layout`` — one frame → the objects from left to right with where each is and in which third of the scene
  (:func:`fl1_core.data.world.frame_questions.layout_text`);
* ``latent_layout`` — the same reading of a frame given as its gold embeddings at ``<|latent|>`` slots in the
  assistant turn ("reading an imagined frame");
* ``chain``  — a world question answered in the full interleaved format: thoughts, one latent span per future frame
  (gold embeddings at the slots, as latent SFT feeds them), the conclusion; ``frame_share`` of them frame-needing.

The question tasks draw the frame-needing kinds only when ``frame_questions`` is on (the ``chain`` task always
does), so recipes written before those kinds existed draw the same examples.

Each example also carries the cell targets of its images (:func:`fl1_core.pretrain.perception.cell_targets`)
for the auxiliary cell head; video examples carry none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..data.collator import QuestionVideo, SFTExample
from ..data.counterfactual_reading import counterfactual_reading
from ..data.frames import frame_pool_indices
from ..data.world.config import WorldConfig
from ..data.world.curriculum_text import (
    CHANGE_QUESTION,
    DRILL_QUESTION,
    HINT,
    LAYOUT_QUESTION,
    LOOKUP_QUESTION,
    MOTION_QUESTION,
    NOTHING,
    RECALL_QUESTION,
    SCENE_QUESTION,
)
from ..data.world.physics import sample_clip
from ..data.world.frame_questions import READING_OPEN, SUPPORT_WORDS, frame_candidates, layout_text, left_to_right
from ..data.world.description import describe_body
from ..data.world.options import build_options, options_block
from ..data.world.questions import candidates
from ..data.world.records import conclusion, sft_record
from ..data.world.world_types import LETTERS, Clip, Question
from ..data.world.render import render_frame, rgb_to_yuv420p
from ..tokens import MCQ_INSTRUCTION
from .perception import cell_targets

TASKS = ("scene", "motion", "change", "lookup", "qa", "video", "layout", "latent_layout", "chain", "follow_reading")
LATENT_TASKS = ("latent_layout", "chain")  # collated in latent mode (frames at latent slots)
QA_VARIANTS = ("reason", "direct", "hinted", "conclude", "conclude_text")
STREAM_CLIPS = 1000  # seed streams of the pretraining world; the world generator uses streams 0-5
STREAM_TASK = 1001

LOOKUP_WAYS = (0.5, 0.25, 0.25)  # hard, easy, recall (the default shares)
WAYS = ("hard", "easy", "recall", "drill")
FOLLOW_TRIES = 50  # clips the follow_reading task tries before it gives up on finding a frame-needing question


@dataclass
class PretrainItem:
    """One training example and the cell targets of its images ([n_images * 9, channels], or None)."""

    task: str
    example: SFTExample
    cells: np.ndarray | None


def yuv420p_to_rgb(yuv: np.ndarray, height: int) -> np.ndarray:
    """Inverse of :func:`fl1_core.data.world.render.rgb_to_yuv420p` (BT.601 limited range, nearest chroma)."""
    y = yuv[:height].astype(np.float32) - 16.0
    w = yuv.shape[1]
    u = yuv[height : height + height // 4].reshape(height // 2, w // 2).astype(np.float32) - 128.0
    v = yuv[height + height // 4 :].reshape(height // 2, w // 2).astype(np.float32) - 128.0
    u = u.repeat(2, 0).repeat(2, 1)
    v = v.repeat(2, 0).repeat(2, 1)
    r = 1.164 * y + 1.596 * v
    g = 1.164 * y - 0.392 * u - 0.813 * v
    b = 1.164 * y + 2.017 * u
    return np.clip(np.stack([r, g, b], -1).round(), 0, 255).astype(np.uint8)


class ClipStream:
    """Deterministic procedural clips: ``clip(i)`` is the same simulation for the same (seed, i)."""

    def __init__(self, seed: int, world: WorldConfig | None = None):
        self.seed = int(seed)
        self.world = world or WorldConfig()
        self.pool = frame_pool_indices(self.world.num_frames, self.world.pool_size)
        self.colors = list(self.world.colors)

    def clip(self, index: int) -> Clip:
        sim, k = sample_clip(np.random.default_rng([self.seed, STREAM_CLIPS, int(index)]), self.world, "train")
        return Clip(f"pre_{index:08d}", "train", sim, k, self.pool, "", None, self.world.fps)

    def frame(self, clip: Clip, frame: int) -> Image.Image:
        """The rendered frame after the world codec's colour conversion."""
        rgb = render_frame(clip.sim, frame)
        return Image.fromarray(yuv420p_to_rgb(rgb_to_yuv420p(rgb), rgb.shape[0]))

    def images(self, clip: Clip, frames: list[int]) -> tuple[list[Image.Image], np.ndarray]:
        cells = np.concatenate([cell_targets(clip.sim, f, self.colors) for f in frames])
        return [self.frame(clip, f) for f in frames], cells


def scene_text(clip: Clip, frame: int) -> str:
    """'From left to right: the red ball on the floor, the blue box on the ledge. The light is off.'"""
    sim = clip.sim
    return left_to_right(clip, frame, lambda i: SUPPORT_WORDS[sim.supports[frame][i]])


def motion_text(clip: Clip, frame: int) -> str:
    """The state of every body at ``frame`` (the world's THOUGHT 0 wording, without "At the end of the video")."""
    sim = clip.sim
    parts = []
    for i, b in enumerate(sim.scene.bodies):
        vx = float(sim.states[frame, i, 2])
        direction = None if abs(vx) < 1e-9 else ("right" if vx > 0 else "left")
        parts.append(describe_body(b.name, b.shape, sim.supports[frame][i], direction))
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[:1].upper() + text[1:] + "."


def change_text(clip: Clip, start: int, end: int) -> str:
    """The events shown first in frames ``start+1..end``, joined by 'and', or 'nothing happened'."""
    said = [e.text for e in clip.sim.events if start < e.frame <= end]
    text = " and ".join(said) if said else NOTHING
    return text[:1].upper() + text[1:] + "."


class TaskSampler:
    """Draws :class:`PretrainItem` s: ``item(task, index)`` is deterministic in (seed, task, index)."""

    def __init__(self, seed: int, world: WorldConfig | None = None, qa_variants: dict[str, float] | None = None,
                 mcq_fraction: float = 0.5, lookup_ways: dict[str, float] | None = None,
                 frame_questions: bool = False, frame_share: float = 0.5, reading_swap_p: float = 0.0):
        self.frame_questions = frame_questions
        self.frame_share = frame_share
        self.reading_swap_p = reading_swap_p
        self.stream = ClipStream(seed, world)
        self.seed = int(seed)
        weights = qa_variants or {"reason": 0.5, "direct": 0.3, "hinted": 0.2}
        self.variants = [v for v in QA_VARIANTS if weights.get(v, 0) > 0]
        w = np.array([weights[v] for v in self.variants], dtype=np.float64)
        self.variant_p = w / w.sum()
        self.mcq_fraction = mcq_fraction
        ways = lookup_ways or dict(zip(WAYS, LOOKUP_WAYS))
        self.ways = [w for w in WAYS if ways.get(w, 0) > 0]
        p = np.array([ways[w] for w in self.ways], dtype=np.float64)
        self.way_p = p / p.sum()

    def _rng(self, task: str, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, STREAM_TASK, TASKS.index(task), int(index)])

    def item(self, task: str, index: int) -> PretrainItem:
        if task not in TASKS:
            raise ValueError(f"unknown pretraining task {task!r}; expected one of {TASKS}")
        rng = self._rng(task, index)
        clip = self.stream.clip(int(rng.integers(0, 2**40)))
        return getattr(self, f"_{task}")(clip, rng, f"{task}-{index}")

    # ------------------------------------------------------------------------------------------------ perception
    def _scene(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        frame = int(rng.integers(0, clip.sim.states.shape[0]))
        images, cells = self.stream.images(clip, [frame])
        return PretrainItem("scene", SFTExample(rid, SCENE_QUESTION, [], scene_text(clip, frame), images), cells)

    def _motion(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        a = int(rng.integers(0, len(clip.pool) - 1))
        frames = [clip.pool[a], clip.pool[a + 1]]
        images, cells = self.stream.images(clip, frames)
        return PretrainItem("motion", SFTExample(rid, MOTION_QUESTION, [], motion_text(clip, frames[1]), images), cells)

    def _change(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        a = int(rng.integers(0, len(clip.pool) - 1))
        b = int(rng.integers(a + 1, min(a + 3, len(clip.pool) - 1) + 1))
        frames = [clip.pool[a], clip.pool[b]]
        images, cells = self.stream.images(clip, frames)
        answer = change_text(clip, frames[0], frames[1])
        return PretrainItem("change", SFTExample(rid, CHANGE_QUESTION, [], answer, images), cells)

    # ---------------------------------------------------------------------------------------------------- reading
    def _lookup(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        """Option reading, four ways: near-identical options of one question (``hard``, the MCQ case), options
        from four different clips (``easy``: any differing word finds the line), the reverse look-up
        ("What does option C say?" → its text), which binds each letter to its line, and ``drill``: the answer first
        goes through all four options in a random order, each as the MCQ conclusion says it ("So, <text>, which is
        option X."), so one example trains four look-ups in the conclusion's own words."""
        way = self.ways[int(rng.choice(len(self.ways), p=self.way_p))]
        options = self._options(clip, rng) if way != "easy" else self._mixed_options(rng)
        asked = LETTERS[int(rng.integers(0, 4))]
        if way == "drill":
            order = [LETTERS[int(i)] for i in rng.permutation(4)]
            thoughts = [conclusion(options[k], k) for k in order]
            question = f"{options_block(options)}\n{DRILL_QUESTION.format(options[asked])}"
            return PretrainItem("lookup", SFTExample(f"{rid}#{way}", question, thoughts, asked), None)
        if way == "recall":
            question, answer = f"{options_block(options)}\n{RECALL_QUESTION.format(asked)}", options[asked]
        else:
            question, answer = f"{options_block(options)}\n{LOOKUP_QUESTION.format(options[asked])}", asked
        return PretrainItem("lookup", SFTExample(f"{rid}#{way}", question, [], answer), None)

    def _candidates(self, clip: Clip, rng: np.random.Generator) -> list[Question]:
        qs = candidates(clip, rng)
        return qs if self.frame_questions else [q for q in qs if not q.needs_frame]

    def _options(self, clip: Clip, rng: np.random.Generator) -> dict[str, str]:
        qs = self._candidates(clip, rng)
        for j in rng.permutation(len(qs)):
            options = build_options(clip, qs[int(j)], rng, LETTERS[int(rng.integers(0, 4))])
            if options is not None:
                return options
        return self._mixed_options(rng)

    def _mixed_options(self, rng: np.random.Generator) -> dict[str, str]:
        texts: list[str] = []
        while len(texts) < 4:
            other = self.stream.clip(int(rng.integers(0, 2**40)))
            text = other.sim.events[int(rng.integers(0, len(other.sim.events)))].text
            if text not in texts:
                texts.append(text)
        return dict(zip(LETTERS, texts))

    # --------------------------------------------------------------------------------------------- questions
    def _question(self, clip: Clip, rng: np.random.Generator, frame: bool | None = None) -> dict:
        """An SFT record of a random kind; ``frame`` True / False keeps only frame-needing / other kinds (when the
        clip has them)."""
        qs = self._candidates(clip, rng) if frame is None else candidates(clip, rng)
        if frame is not None:
            qs = [q for q in qs if q.needs_frame == frame] or qs
        kinds = sorted({q.kind for q in qs})
        kind = kinds[int(rng.integers(0, len(kinds)))]
        pick = [q for q in qs if q.kind == kind]
        q = pick[int(rng.integers(0, len(pick)))]
        letter = LETTERS[int(rng.integers(0, 4))] if rng.random() < self.mcq_fraction else None
        return sft_record(clip, q, "", rng, letter)

    def _qa(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        rec = self._question(clip, rng)
        variant = self.variants[int(rng.choice(len(self.variants), p=self.variant_p))]
        question, thoughts = _record_text(rec)
        frames = [clip.pool[i - 1] for i in rec["image"]]
        if variant == "direct":
            thoughts = []
        elif variant == "conclude_text":  # the concluding thought without the pictures: the in-context look-up,
            thoughts, frames = thoughts[-1:], []  # cheap enough to train at the look-up task's scale
        elif variant == "conclude":  # only the concluding thought ("So, <answer>, which is option X."): the
            thoughts = thoughts[-1:]  # option look-up in the question's context, with most of the loss on it
        elif variant == "hinted":
            frames += [clip.pool[i - 1] for i in rec["reasoning_image"]]
            question = question.replace("\n" + MCQ_INSTRUCTION, "") + HINT + (
                "\n" + MCQ_INSTRUCTION if MCQ_INSTRUCTION in question else "")
        images, cells = self.stream.images(clip, frames) if frames else ([], None)
        return PretrainItem("qa", SFTExample(f"{rid}#{variant}", question, thoughts, rec["answer"], images), cells)

    def _video(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        rec = self._question(clip, rng)
        question, thoughts = _record_text(rec)
        if rng.random() < 0.4:
            thoughts = []
        n = clip.cutoff + 1
        indices = list(range(n - (n % 2)))  # Qwen3-VL merges frames in temporal pairs
        frames = np.stack([np.asarray(self.stream.frame(clip, f)) for f in indices])
        video = QuestionVideo(frames=frames, fps=float(clip.fps), frame_indices=indices)
        return PretrainItem("video", SFTExample(rid, question, thoughts, rec["answer"], question_video=video), None)


    # ------------------------------------------------------------------------------------------- imagination
    def _layout(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        frame = int(rng.integers(0, clip.sim.states.shape[0]))
        images, cells = self.stream.images(clip, [frame])
        return PretrainItem("layout", SFTExample(rid, LAYOUT_QUESTION, [], layout_text(clip, frame), images), cells)

    def _latent_layout(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        """The frame as gold embeddings at latent slots (its vision tokens are targets, so no cell targets)."""
        frame = int(rng.integers(0, clip.sim.states.shape[0]))
        example = SFTExample(rid, LAYOUT_QUESTION, [""], layout_text(clip, frame), [], [self.stream.frame(clip, frame)])
        return PretrainItem("latent_layout", example, None)

    def _chain(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        rec = self._question(clip, rng, frame=bool(rng.random() < self.frame_share))
        question, thoughts = _record_text(rec)
        questions = [self.stream.frame(clip, clip.pool[i - 1]) for i in rec["image"]]
        future = [self.stream.frame(clip, clip.pool[i - 1]) for i in rec["reasoning_image"]]
        example = SFTExample(rid, question, thoughts, rec["answer"], questions, future)
        if self.reading_swap_p > 0 and rng.random() < self.reading_swap_p:  # no draw when off: old recipes unchanged
            example = counterfactual_reading(example, rng) or example
        return PretrainItem("chain", example, None)

    def _follow_reading(self, clip: Clip, rng: np.random.Generator, rid: str) -> PretrainItem:
        """Clips without a frame-needing question are passed over for the stream's next draws."""
        for _ in range(FOLLOW_TRIES):
            if clip.future and frame_candidates(clip):  # candidates() has the frame kinds when the clip has a future
                break
            clip = self.stream.clip(int(rng.integers(0, 2**40)))
        else:
            raise RuntimeError(f"{rid}: no frame-needing question in {FOLLOW_TRIES} clips of the stream")
        rec = self._question(clip, rng, frame=True)
        question, thoughts = _record_text(rec)
        final = thoughts[-1]
        reading = final.split(" So, ", 1)[0]
        if not rec["meta"]["needs_frame"] or not reading.startswith(READING_OPEN):
            raise ValueError(f"{rid}: not a frame-needing chain (its last thought is {final!r})")
        example = SFTExample(rid, question, [final], rec["answer"], no_loss_text=reading)
        return PretrainItem("follow_reading", example, None)


def _record_text(rec: dict) -> tuple[str, list[str]]:
    """(question without image markers, thoughts without 'THOUGHT n:' prefixes) of a world SFT record."""
    from ..tokens import split_trajectory

    human = rec["conversations"][0]["value"].replace("<image>", "").strip()
    return human, split_trajectory(rec["conversations"][1]["value"])
