"""Scene sampling, deterministic 2-D side-view physics and event detection of the synthetic future world.

The world is a side view: a floor, a left and a right wall, optionally a shelf ("the ledge") attached to one wall and
a switch on one wall at floor level wired to a lamp ("the light"). Balls (mass 1, no friction) and boxes (mass 2,
sliding friction) move horizontally on their support, collide elastically in 1-D with bodies on the same support,
bounce off walls, slide off the ledge, fall under gravity and land on the floor. Every state change is an event with
an exact time; the event's ``frame`` is the first frame that shows it (``ceil(time)``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl1_core.data.frames import frame_pool_indices

from .config import WorldConfig

SHAPES = ("ball", "box")
MASS = {"ball": 1.0, "box": 2.0}
EVENT_TYPES = ("bounce", "hit", "fall", "land", "stop", "switch", "light")


# ---------------------------------------------------------------------------------------------------------------- text
def event_text(etype: str, subject: str, obj: str | None = None, where: str | None = None) -> str:
    """The canonical sentence of an event (judges and rule checks match these strings exactly)."""
    if etype == "bounce":
        return f"the {subject} bounces off the {where} wall"
    if etype == "hit":
        return f"the {subject} hits the {obj}"
    if etype == "fall":
        return f"the {subject} falls off the ledge"
    if etype == "land":
        return f"the {subject} lands on the floor"
    if etype == "stop":
        return f"the {subject} stops on the {where}"
    if etype == "switch":
        return f"the {subject} hits the switch"
    if etype == "light":
        return "the light turns on"
    raise ValueError(f"unknown event type {etype!r}; expected one of {EVENT_TYPES}")


_EVENT_PATTERNS = {  # event type → what its canonical sentence (event_text) says, after the subject
    "switch": r"hits the switch", "hit": r"hits the (?!switch\b)", "bounce": r"bounces off the \w+ wall",
    "fall": r"falls off the ledge", "land": r"lands on the floor", "stop": r"stops on the",
    "light": r"the light turns on",
}


def first_event_type(text: str) -> str | None:
    """The type (:data:`EVENT_TYPES`) of the first event sentence ``text`` states, by position; ``None`` if none."""
    lowered = text.lower()
    found = [(m.start(), etype) for etype, pat in _EVENT_PATTERNS.items() if (m := re.search(pat, lowered))]
    return min(found)[1] if found else None


def swapped_roles(sentence: str) -> str | None:
    """The collision ``sentence`` with its roles swapped ("the A hits the B" → "the B hits the A"; the subject of a
    collision is the faster body), ``None`` for any other event, the switch included."""
    m = re.fullmatch(r"the (.+?) hits the (.+)", sentence.strip())
    if not m or m.group(2) == "switch":
        return None
    return f"the {m.group(2)} hits the {m.group(1)}"


# --------------------------------------------------------------------------------------------------------- dataclasses
@dataclass
class Body:
    """A ball or a box; (x, y) is its centre in pixels (y down), ``r`` its radius / half side."""

    name: str
    shape: str
    color: str
    rgb: tuple[int, int, int]
    r: float
    x: float
    y: float
    vx: float
    vy: float = 0.0
    support: str = "floor"  # "floor" | "ledge" | "air"

    @property
    def mass(self) -> float:
        return MASS[self.shape]


@dataclass(frozen=True)
class Ledge:
    """A shelf attached to the ``side`` wall spanning ``x0..x1`` with top surface at ``top``."""

    side: str
    x0: float
    x1: float
    top: float
    thickness: float


@dataclass
class Scene:
    """Static geometry plus the initial bodies of one clip."""

    width: int
    height: int
    wall: float
    floor_y: float
    ledge: Ledge | None
    switch_side: str | None
    switch_height: float
    lamp: tuple[float, float, float]  # cx, cy, radius
    gravity: float
    friction: float
    bodies: list[Body]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly geometry (bodies excluded)."""
        return {
            "wall": round(self.wall, 3),
            "floor_y": round(self.floor_y, 3),
            "ledge": None
            if self.ledge is None
            else {
                "side": self.ledge.side,
                "x0": round(self.ledge.x0, 3),
                "x1": round(self.ledge.x1, 3),
                "top": round(self.ledge.top, 3),
            },
            "switch": self.switch_side,
            "light": self.switch_side is not None,
            "gravity": round(self.gravity, 4),
            "friction": round(self.friction, 4),
        }


@dataclass
class Event:
    """One event: exact time (in frames), first frame showing it, type, subject/object names and canonical text."""

    time: float
    frame: int
    type: str
    subject: str
    object: str | None
    where: str | None
    text: str

    def to_dict(self, fps: int) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time": round(self.frame / fps, 4),
            "type": self.type,
            "subject": self.subject,
            "object": self.object,
            "where": self.where,
            "text": self.text,
        }


@dataclass
class Simulation:
    """Result of simulating a scene: per-frame states, light state, events and validity."""

    scene: Scene
    states: np.ndarray  # (num_frames, num_bodies, 4): x, y, vx, vy
    supports: list[list[str]]  # [frame][body]
    light_on_frame: int | None
    events: list[Event]
    valid: bool = True
    reason: str = ""
    observed_until: int = -1
    extras: dict[str, Any] = field(default_factory=dict)

    def future_events(self) -> list[Event]:
        """Events after the observed prefix (frame > observed_until)."""
        return [e for e in self.events if e.frame > self.observed_until]

    def observed_events(self) -> list[Event]:
        return [e for e in self.events if e.frame <= self.observed_until]


# ------------------------------------------------------------------------------------------------------------ sampling
def sample_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """Sample geometry and 2..max_objects non-overlapping bodies with distinct colours."""
    s = cfg.scale
    W, H = cfg.width, cfg.height
    wall = round(5 * s)
    floor_y = H - round(6 * s)
    ledge = None
    if rng.random() < cfg.ledge_prob:
        side = "left" if rng.random() < 0.5 else "right"
        length = float(rng.uniform(32, 44)) * s
        top = floor_y - float(rng.uniform(34, 44)) * s
        if side == "left":
            ledge = Ledge(side, float(wall), wall + length, top, 4 * s)
        else:
            ledge = Ledge(side, W - wall - length, float(W - wall), top, 4 * s)
    switch_side = None
    if rng.random() < cfg.switch_prob:
        switch_side = "left" if rng.random() < 0.5 else "right"
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colors = list(cfg.colors)
    picked = rng.permutation(len(colors))[:n]
    bodies: list[Body] = []
    for i, ci in enumerate(picked):
        color = colors[int(ci)]
        shape = SHAPES[int(rng.integers(0, 2))]
        r = float(rng.uniform(8.0, 10.0)) * s
        on_ledge = ledge is not None and rng.random() < 0.45
        for _ in range(50):
            support = "ledge" if on_ledge else "floor"
            if support == "ledge":
                assert ledge is not None
                lo, hi = ledge.x0 + r, ledge.x1 - r
                y = ledge.top - r
            else:
                lo, hi = wall + r, W - wall - r
                y = floor_y - r
            x = float(rng.uniform(lo, hi))
            if all(b.support != support or abs(b.x - x) > b.r + r + 3 * s for b in bodies):
                break
        else:
            continue  # no room: skip this body
        moving = i == 0 or rng.random() < cfg.moving_prob
        vx = float(rng.uniform(1.5, 4.5)) * s * (1 if rng.random() < 0.5 else -1) if moving else 0.0
        bodies.append(Body(f"{color} {shape}", shape, color, cfg.colors[color], r, x, y, vx, 0.0, support))
    return Scene(
        width=W,
        height=H,
        wall=float(wall),
        floor_y=float(floor_y),
        ledge=ledge,
        switch_side=switch_side,
        switch_height=14 * s,
        lamp=(W / 2, 10 * s, 6 * s),
        gravity=1.0 * s,
        friction=float(rng.uniform(0.04, 0.12)) * s,
        bodies=bodies,
    )


# ---------------------------------------------------------------------------------------------------------- simulation
def _overlap2d(a: Body, b: Body) -> bool:
    return abs(a.x - b.x) < a.r + b.r and abs(a.y - b.y) < a.r + b.r


def simulate(scene: Scene, num_frames: int, substeps: int = 8) -> Simulation:
    """Simulate ``num_frames`` frames (frame 0 = initial state) with ``substeps`` sub-steps per frame.

    Returns a :class:`Simulation`; ``valid`` is False (with a ``reason``) when the scene leaves the simple physics this
    simulator handles (a falling body touching anything, a landing on top of another body).
    """
    bodies = [Body(**{k: getattr(b, k) for k in b.__dataclass_fields__}) for b in scene.bodies]
    n = len(bodies)
    states = np.zeros((num_frames, n, 4), dtype=np.float64)
    supports: list[list[str]] = []
    events: list[Event] = []
    light_on_frame: int | None = None
    light_pending: int | None = None
    dt = 1.0 / substeps
    left_in, right_in = scene.wall, scene.width - scene.wall
    sim = Simulation(scene, states, supports, None, events)

    def emit(t: float, etype: str, subject: str, obj: str | None = None, where: str | None = None) -> None:
        text = event_text(etype, subject, obj, where)
        events.append(Event(t, int(math.ceil(t - 1e-9)), etype, subject, obj, where, text))

    def record(k: int) -> None:
        for i, b in enumerate(bodies):
            states[k, i] = (b.x, b.y, b.vx, b.vy)
        supports.append([b.support for b in bodies])

    record(0)
    for k in range(1, num_frames):
        for sub in range(substeps):
            t = (k - 1) + (sub + 1) * dt
            for b in bodies:
                if b.support == "air":
                    b.vy += scene.gravity * dt
                    b.x += b.vx * dt
                    b.y += b.vy * dt
                    if b.y + b.r >= scene.floor_y:
                        b.y, b.vy, b.support = scene.floor_y - b.r, 0.0, "floor"
                        emit(t, "land", b.name)
                        if any(o is not b and o.support == "floor" and abs(o.x - b.x) < o.r + b.r for o in bodies):
                            sim.valid, sim.reason = False, "landed on a body"
                            return sim
                else:
                    if b.shape == "box" and b.vx != 0.0:
                        dv = scene.friction * dt
                        if abs(b.vx) <= dv:
                            b.vx = 0.0
                            emit(t, "stop", b.name, where=b.support)
                        else:
                            b.vx -= math.copysign(dv, b.vx)
                    b.x += b.vx * dt
                    lg = scene.ledge
                    if b.support == "ledge" and lg is not None:
                        off = (b.x - b.r > lg.x1) if lg.side == "left" else (b.x + b.r < lg.x0)
                        if off:
                            b.support, b.vy = "air", 0.0
                            emit(t, "fall", b.name)
                # walls
                for side in ("left", "right"):
                    hit = (b.x - b.r < left_in and b.vx < 0) if side == "left" else (b.x + b.r > right_in and b.vx > 0)
                    if not hit:
                        continue
                    edge = left_in + b.r if side == "left" else right_in - b.r
                    b.x = 2 * edge - b.x
                    b.vx = -b.vx
                    if scene.switch_side == side and b.support == "floor":
                        emit(t, "switch", b.name)
                        if light_on_frame is None and light_pending is None:
                            light_pending = int(math.ceil(t - 1e-9)) + 1
                    else:
                        emit(t, "bounce", b.name, where=side)
            # body-body collisions on the same support
            for i in range(n):
                for j in range(i + 1, n):
                    a, c = bodies[i], bodies[j]
                    if a.support == "air" or c.support == "air":
                        if _overlap2d(a, c):
                            sim.valid, sim.reason = False, "mid-air contact"
                            return sim
                        continue
                    if a.support != c.support or abs(a.x - c.x) >= a.r + c.r:
                        continue
                    if (c.x - a.x) * (c.vx - a.vx) >= 0:
                        continue  # separating
                    ma, mc, ua, uc = a.mass, c.mass, a.vx, c.vx
                    a.vx = ((ma - mc) * ua + 2 * mc * uc) / (ma + mc)
                    c.vx = ((mc - ma) * uc + 2 * ma * ua) / (ma + mc)
                    subj, obj = (a, c) if abs(ua) >= abs(uc) else (c, a)
                    emit(t, "hit", subj.name, obj.name)
            # a falling body must not touch the ledge
            lg = scene.ledge
            if lg is not None:
                for b in bodies:
                    if b.support == "air" and b.x + b.r > lg.x0 and b.x - b.r < lg.x1 and (
                        b.y + b.r > lg.top and b.y - b.r < lg.top + lg.thickness
                    ):
                        sim.valid, sim.reason = False, "fell through the ledge"
                        return sim
        if light_pending is not None and k == light_pending:
            emit(float(k), "light", "light")
            light_on_frame, light_pending = k, None
        record(k)
    sim.light_on_frame = light_on_frame
    events.sort(key=lambda e: e.time)  # stable sort: same-time events keep their emission order
    return sim


# ---------------------------------------------------------------------------------------------------------- acceptance
def pool_bin(frame: int, pool: list[int]) -> int:
    """0-based index of the first pool frame >= ``frame`` (the pool frame that first shows the event)."""
    for i, p in enumerate(pool):
        if p >= frame:
            return i
    raise ValueError(f"frame {frame} is after the last pool frame {pool[-1]}")


def check_events(sim: Simulation, cfg: WorldConfig) -> str:
    """Empty string when the event chain is acceptable, else the reason for rejecting it."""
    if not sim.valid:
        return sim.reason
    ev = sim.events
    pool = frame_pool_indices(cfg.num_frames, cfg.pool_size)
    if not cfg.min_events <= len(ev) <= cfg.max_events:
        return f"{len(ev)} events"
    frames = [e.frame for e in ev]
    if any(b <= a for a, b in zip(frames, frames[1:])):
        return "events share a frame"
    if frames[0] <= pool[0] or frames[-1] > pool[-1]:
        return "event outside the pool range"
    texts = [e.text for e in ev]
    if len(set(texts)) != len(texts):
        return "repeated event"
    return ""


def choose_cutoff(sim: Simulation, cfg: WorldConfig, split: str, rng: np.random.Generator) -> int | None:
    """Pick the observed prefix: the last observed frame is a pool frame; enough events must lie in the future.

    Train clips observe 2-4 pool frames and keep >= ``min_future_events_train`` future events; test clips observe 3-4
    pool frames and keep >= ``min_future_events_test``. Returns the number of observed pool frames or None.
    """
    pool = frame_pool_indices(cfg.num_frames, cfg.pool_size)
    need = cfg.min_future_events_train if split == "train" else cfg.min_future_events_test
    ks = (2, 3, 4) if split == "train" else (3, 4)
    valid = [k for k in ks if sum(e.frame > pool[k - 1] for e in sim.events) >= need]
    if not valid:
        return None
    return int(valid[int(rng.integers(0, len(valid)))])


def sample_clip(rng: np.random.Generator, cfg: WorldConfig, split: str) -> tuple[Simulation, int]:
    """Rejection-sample a scene whose simulated event chain passes :func:`check_events` and has a valid cutoff.

    Returns the simulation (with ``observed_until`` set) and the number of observed pool frames.
    """
    pool = frame_pool_indices(cfg.num_frames, cfg.pool_size)
    for attempt in range(cfg.max_attempts):
        scene = sample_scene(rng, cfg)
        if len(scene.bodies) < cfg.min_objects:
            continue
        sim = simulate(scene, cfg.num_frames, cfg.substeps)
        if check_events(sim, cfg):
            continue
        k = choose_cutoff(sim, cfg, split, rng)
        if k is None:
            continue
        sim.observed_until = pool[k - 1]
        sim.extras["attempts"] = attempt + 1
        return sim, k
    raise RuntimeError(f"no acceptable {split} clip after {cfg.max_attempts} attempts; relax WorldConfig")
