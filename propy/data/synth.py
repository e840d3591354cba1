"""The synthetic PRVR benchmark (v2), written as real mp4 files + canonical annotations.

The default study must run with no download, yet ask each of the paper's
questions separately. So every query has a designed *rival*: a gallery video
that matches everything in the query except the one thing its kind tests.

Videos. A flat grey background, then ``events_per_video`` *events* back to back.
An event is one object (shape x colour) doing one action. Actions come in opposite
pairs named by their end state (ends on the left/right, at the top/bottom, ends
big/small); an action's frames are its opposite's in reverse order, so no single frame and no
order-blind pooling tells the two apart. Most events are *fillers* (grey rings and
bars, never queried, so no query's object can match one), so a single-event moment
is short against its video (TVR-like ratios).

Pairs. Videos come in (base, twin) pairs of one kind, dealt by ``kind_mix``; each
pair holds two probe queries, and each probe's rival is the other video of its pair:
- ``appearance``: one slot shows (o, a) in the base, (o', a) in the twin (o' = o's
  shape in another colour). One frame suffices: the control.
- ``order``: one slot shows (o, a) in the base, (o, opposite a) in the twin, the
  same frames reversed in time. Needs frame order.
- ``composition``: the base shows events A1..Ak consecutively (one query, "A1, then
  A2, ..."), the twin shows the same events in the same order, spread apart with
  other events between; and symmetrically a run C1..Cm of the twin is spread in the
  base. Only an event spanning the whole run prefers the own video: pyramid depth.
- ``context``: the base shows B then A ("A just after B"; the moment is A alone),
  the twin shows A and B apart; symmetrically D then C in the twin. A coarse event
  covering B and A matches the words but not the moment (VCMR at IoU >= 0.5): ADI.

Uniqueness. A query is written only when its own video is the one video of its
split where it holds (single events: the object doing the action; composition: the
run; context: the adjacency), so R@K has one positive. Single-event probes draw
objects from one half of the shape x colour grid (a checkerboard), dealt without
repeats until the split has used them all; composition and context events draw
from the other half, so the two never meet.

Files: ``annotations/<split>.jsonl``, ``query_kinds.json`` ({desc_id: kind}),
``rivals.json`` ({desc_id: [rival vid_name]}), ``captions.jsonl`` (frame-state
captions for pretraining the small CLIP, see ``captions``), ``stats.json``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propy.config import QUERY_KINDS, SPLITS, SynthConfig
from propy.data.annotations import Record, write_annotations
from propy.errors import ConfigError, DataError
from propy.runtime.files import (
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    prepare_output,
    swap_in,
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 255),
    "yellow": (240, 220, 40),
    "magenta": (220, 60, 220),
    "cyan": (40, 210, 220),
    "white": (240, 240, 240),
    "orange": (255, 140, 20),
    "purple": (120, 50, 200),
    "pink": (255, 150, 190),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
# Fillers (never queried) have their own colour and shapes, so no query's object can match one.
FILLER_COLOUR = "grey"
FILLER_RGB = (140, 140, 140)
FILLER_SHAPES = ("ring", "bar")
# action -> (animated parameter, value at the start, value at the end); x, y are fractions of the frame side.
# Each action is named by the state it ends in, in the words of the frame captions ("is on the left"),
# so the frozen text tower grounds it; only the order of the frames says it is the end.
ACTIONS: dict[str, tuple[str, float, float]] = {
    "ends on the left": ("x", 0.75, 0.25),
    "ends on the right": ("x", 0.25, 0.75),
    "ends at the top": ("y", 0.75, 0.25),
    "ends at the bottom": ("y", 0.25, 0.75),
    "ends big": ("scale", 0.6, 1.4),
    "ends small": ("scale", 1.4, 0.6),
}
# an action's opposite animates the same parameter between the same ends, the other way round
OPPOSITE = {
    a: next(b for b, spec in ACTIONS.items() if spec == (p, end, start)) for a, (p, start, end) in ACTIONS.items()
}
STILL = {"x": 0.5, "y": 0.5, "scale": 1.0}
# frame-state words of the captions: parameter -> (low threshold, word below, high threshold, word above)
STATE_WORDS = {
    "x": (0.4, "on the left", 0.6, "on the right"),
    "y": (0.4, "at the top", 0.6, "at the bottom"),
    "scale": (0.85, "small", 1.15, "big"),
}
CONTEXT_WORDS = "just after"
RADIUS = 1 / 8  # of the frame side: objects are about a quarter of the frame wide
BACKGROUND = (20, 60)  # grey level range of the backgrounds
RATIO_EDGES = [round(0.1 * i, 1) for i in range(11)]
CODECS = ("libx264", "libopenh264", "mpeg4")  # first one this PyAV build can encode wins
# asm=0: x264's plain C code. Its SIMD code, chosen at run time by CPU, gave other bytes from run
# to run on one machine (about 1 file in 25; decoded frames equal), and other machines have other SIMD.
CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast", "x264-params": "asm=0"}}
# Bit-exact files: FFmpeg then writes no library version strings (the mp4 "encoder" tag).
BITEXACT_CODEC = {"flags": "+bitexact"}
BITEXACT_CONTAINER = {"fflags": "+bitexact"}
STAMP = ".synth-settings.json"  # settings of a run in progress, inside <out>.partial
VERSION = 4  # bump when the rendering or encoding changes: an interrupted run's videos are then not reused
LAYOUT_TRIES = 100


@dataclass(frozen=True)
class Event:
    shape: str
    colour: str
    action: str
    frames: int

    @property
    def obj(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def noun(self) -> str:
        """The object with its article: "a red circle", "an orange square"."""
        return f"{'an' if self.colour[0] in 'aeiou' else 'a'} {self.obj}"

    @property
    def text(self) -> str:
        return f"{self.noun} {self.action}"

    @property
    def key(self) -> tuple[str, str]:
        return self.obj, self.action

    @property
    def filler(self) -> bool:
        return self.colour == FILLER_COLOUR


@dataclass(frozen=True)
class Probe:
    """A query of a video: its kind and the slots it names (context: (neighbour, moment))."""

    kind: str
    slots: tuple[int, ...]

    @property
    def moment(self) -> tuple[int, int]:
        """First and last slot of the moment (context: the moment is the last slot only)."""
        return (self.slots[-1], self.slots[-1]) if self.kind == "context" else (self.slots[0], self.slots[-1])


@dataclass(frozen=True)
class Video:
    name: str
    background: int
    events: tuple[Event, ...]
    probes: tuple[Probe, ...]
    partner: int  # index of the pair's other video in the split's list (the rival of every probe)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """``[start, end)`` frame range of each event."""
        ends = np.cumsum([e.frames for e in self.events]).tolist()
        return list(zip([0] + ends[:-1], ends))

    def describe(self, probe: Probe) -> str:
        ev = [self.events[s] for s in probe.slots]
        if probe.kind == "composition":
            return ", then ".join(e.text for e in ev)
        if probe.kind == "context":
            return f"{ev[1].text} {CONTEXT_WORDS} {ev[0].text}"
        return ev[0].text

    def holds(self, probe: Probe, other: Video) -> bool:
        """Does ``probe`` of this video hold in ``other`` (same event keys, adjacent as the kind needs)?"""
        keys = [self.events[s].key for s in probe.slots]
        theirs = [e.key for e in other.events]
        if probe.kind in ("appearance", "order"):
            return keys[0] in theirs
        return any(theirs[i : i + len(keys)] == keys for i in range(len(theirs) - len(keys) + 1))


# --------------------------------------------------------------------------- sampling

Desc = tuple[str, str, str]  # (shape, colour, action) of an event


def _obj(desc: Desc) -> str:
    return f"{desc[1]} {desc[0]}"


def object_half(shape: str, colour: str) -> int:
    """0: objects of single-event probes, 1: of composition/context events (a checkerboard of the grid)."""
    return (SHAPES.index(shape) + list(COLOURS).index(colour)) % 2


class Deck:
    """Event descriptions of one object half, dealt without repeats until all are used (then a fresh deck joins)."""

    def __init__(self, rng: np.random.Generator, half: int) -> None:
        self.rng = rng
        self.all: list[Desc] = [
            (s, c, a) for s in SHAPES for c in COLOURS for a in ACTIONS if object_half(s, c) == half
        ]
        self.left: list[Desc] = []

    def draw(self, pred=lambda d: True) -> Desc:
        """The next description meeting ``pred``."""
        for _ in range(2):
            for i, desc in enumerate(self.left):
                if pred(desc):
                    return self.left.pop(i)
            self.left += [self.all[i] for i in self.rng.permutation(len(self.all))]
        raise RuntimeError("no description satisfies the predicate, even in a fresh deck")

    def take(self, desc: Desc) -> None:
        """Deal ``desc`` now (from a fresh deck if this one has dealt it)."""
        if desc not in self.left:
            self.left += [self.all[i] for i in self.rng.permutation(len(self.all))]
        self.left.remove(desc)


class Dealer:
    """Everything random about one split: event lengths, fillers, the two decks."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.single, self.sequence = Deck(rng, 0), Deck(rng, 1)

    def frames(self) -> int:
        lo, hi = self.cfg.event_seconds
        return max(2, round(self.rng.uniform(lo, hi) * self.cfg.fps))

    def event(self, desc: Desc) -> Event:
        return Event(desc[0], desc[1], desc[2], self.frames())

    def filler(self) -> Event:
        return Event(
            str(self.rng.choice(FILLER_SHAPES)), FILLER_COLOUR, str(self.rng.choice(list(ACTIONS))), self.frames()
        )

    def distinct(self, deck: Deck, count: int, used: set[str] = frozenset()) -> list[Event]:
        """``count`` events of distinct objects, none in ``used``."""
        events: list[Event] = []
        for _ in range(count):
            taken = used | {e.obj for e in events}
            events.append(self.event(deck.draw(lambda d, taken=taken: _obj(d) not in taken)))
        return events


def _spread_slots(free: list[int], count: int, rng: np.random.Generator) -> list[int] | None:
    """``count`` of the ``free`` slots, evenly spaced through them, none adjacent to another (None if impossible)."""
    if count == 0:
        return []
    if count == 1:
        return [free[int(rng.integers(len(free)))]] if free else None
    step = (len(free) - 1) // (count - 1)
    if step < 1:
        return None
    start = int(rng.integers(len(free) - step * (count - 1)))
    picked = [free[start + i * step] for i in range(count)]
    return None if any(b - a < 2 for a, b in zip(picked, picked[1:])) else picked


def _layout(n: int, run: list[Event], spread: list[Event], dealer: Dealer) -> tuple[list[Event], list[int], list[int]]:
    """``n`` slots: ``run`` consecutive, ``spread`` in order with no two adjacent, fillers elsewhere.

    Returns the events and the slots of ``run`` and of ``spread``.
    """
    for _ in range(LAYOUT_TRIES):
        start = int(dealer.rng.integers(n - len(run) + 1))
        run_slots = list(range(start, start + len(run)))
        free = [s for s in range(n) if s not in run_slots]
        spread_slots = _spread_slots(free, len(spread), dealer.rng)
        if spread_slots is not None:
            break
    else:
        raise ConfigError(f"synth: cannot lay out a run of {len(run)} and {len(spread)} spread events in {n} slots")
    slots: dict[int, Event] = dict(zip(run_slots, run)) | dict(zip(spread_slots, spread))
    events = [slots[s] if s in slots else dealer.filler() for s in range(n)]
    return events, run_slots, spread_slots


def _pair(kind: str, dealer: Dealer) -> tuple[Video, Video]:
    """A (base, twin) pair of ``kind``; see the module docstring."""
    cfg, rng = dealer.cfg, dealer.rng
    n = int(rng.integers(cfg.events_per_video[0], cfg.events_per_video[1] + 1))
    background = int(rng.integers(*BACKGROUND))
    if kind in ("appearance", "order"):
        if kind == "order":  # the object must be free to do both opposite actions
            desc = dealer.single.draw(lambda d: (d[0], d[1], OPPOSITE[d[2]]) in dealer.single.left)
            twin_desc = (desc[0], desc[1], OPPOSITE[desc[2]])
            dealer.single.take(twin_desc)
        else:
            desc = dealer.single.draw()
            twin_desc = dealer.single.draw(lambda d: d[0] == desc[0] and d[2] == desc[2] and d[1] != desc[1])
        base_event = dealer.event(desc)
        base_events, (slot,), _ = _layout(n, [base_event], [], dealer)
        twin_events = list(base_events)
        twin_events[slot] = dataclasses.replace(base_event, colour=twin_desc[1], action=twin_desc[2])
        probe = (Probe(kind, (slot,)),)
        return (
            Video("", background, tuple(base_events), probe, -1),
            Video("", background, tuple(twin_events), probe, -1),
        )
    if kind == "composition":
        k_base, k_twin = _run_lengths(n, cfg.composition_events, rng)
    else:
        k_base = k_twin = 2
    a = dealer.distinct(dealer.sequence, k_base)
    c = dealer.distinct(dealer.sequence, k_twin, {e.obj for e in a})
    if kind == "context":  # spread in either order: never B right before A
        a_spread = list(a) if rng.random() < 0.5 else a[::-1]
        c_spread = list(c) if rng.random() < 0.5 else c[::-1]
    else:
        a_spread, c_spread = a, c
    base_events, base_run, _ = _layout(n, a, c_spread, dealer)
    twin_events, twin_run, _ = _layout(n, c, a_spread, dealer)
    return (
        Video("", background, tuple(base_events), (Probe(kind, tuple(base_run)),), -1),
        Video("", background, tuple(twin_events), (Probe(kind, tuple(twin_run)),), -1),
    )


def _run_lengths(n: int, bounds: list[int], rng: np.random.Generator) -> tuple[int, int]:
    """Run lengths (base, twin) in ``bounds`` such that each video fits its run and the other's spread."""
    fits = [
        (a, b)
        for a in range(bounds[0], bounds[1] + 1)
        for b in range(bounds[0], bounds[1] + 1)
        if a + 2 * b - 1 <= n and b + 2 * a - 1 <= n
    ]
    if not fits:
        raise ConfigError(
            f"synth: {n} events per video cannot hold a composition run of {bounds[0]} and its "
            f"rival's spread run; raise events_per_video or lower composition_events"
        )
    return fits[int(rng.integers(len(fits)))]


def _kind_plan(cfg: SynthConfig, pairs: int, rng: np.random.Generator) -> list[str]:
    """The kind of each pair: ``kind_mix`` weights turned into counts (largest remainders), shuffled."""
    weights = np.array([cfg.kind_mix.get(k, 0.0) for k in QUERY_KINDS], dtype=np.float64)
    exact = weights / weights.sum() * pairs
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: pairs - counts.sum()]:
        counts[i] += 1
    plan = [k for k, c in zip(QUERY_KINDS, counts) for _ in range(c)]
    return [plan[i] for i in rng.permutation(len(plan))]


def sample_split(cfg: SynthConfig, split: str) -> list[Video]:
    """The videos of one split (names ``<split><index>``, in shuffled order), partners linked."""
    count = getattr(cfg.videos, split)
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    dealer = Dealer(cfg, rng)
    videos: list[Video] = []
    for kind in _kind_plan(cfg, count // 2, rng):
        base, twin = _pair(kind, dealer)
        videos += [dataclasses.replace(base, partner=len(videos) + 1), dataclasses.replace(twin, partner=len(videos))]
    order = rng.permutation(count)
    position = {j: i for i, j in enumerate(order)}
    width = len(str(count - 1))
    return [
        dataclasses.replace(videos[j], name=f"{split}{i:0{width}d}", partner=position[videos[j].partner])
        for i, j in enumerate(order)
    ]


# --------------------------------------------------------------------------- queries


@dataclass
class SplitQueries:
    records: list[Record]
    kinds: dict[str, str]  # desc_id -> kind
    rivals: dict[str, list[str]]  # desc_id -> rival vid_names
    dropped: dict[str, int]  # kind -> probes left out because another video also holds them


def split_records(videos: list[Video], fps: int) -> SplitQueries:
    """Canonical records of one split's probes (see the module docstring).

    A probe is written when its own video is the one video of the split where it
    holds, and its rival (the pair's other video) keeps a probe of its own, so every
    written query has its rival in the gallery (a video with no query is in none).
    """
    unique = [
        [v.holds(p, v) and not any(v.holds(p, w) for w in videos if w is not v) for p in v.probes] for v in videos
    ]
    out = SplitQueries([], {}, {}, {})
    for i, v in enumerate(videos):
        duration = _seconds(sum(e.frames for e in v.events), fps)
        bounds = v.bounds
        for j, probe in enumerate(v.probes):
            if not (unique[i][j] and any(unique[v.partner])):
                out.dropped[probe.kind] = out.dropped.get(probe.kind, 0) + 1
                continue
            first, last = probe.moment
            desc_id = f"{v.name}#{probe.kind}{j}"
            ts = (_seconds(bounds[first][0], fps), _seconds(bounds[last][1], fps))
            out.records.append(Record(v.name, desc_id, v.describe(probe), duration, ts))
            out.kinds[desc_id] = probe.kind
            out.rivals[desc_id] = [videos[v.partner].name]
    return out


def _seconds(frames: int, fps: int) -> float:
    return round(frames / fps, 6)


# --------------------------------------------------------------------------- rendering


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Approximate signed distance in pixels from the shape's edge (negative inside)."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return np.hypot(dx, dy) - r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
    if shape == "diamond":
        return (ax + ay - 1.25 * r) / np.sqrt(2)
    if shape == "triangle":  # apex up, circumradius 1.3 r
        half = 0.65 * r
        return np.maximum(dy - half, np.maximum(0.866 * dx - 0.5 * dy, -0.866 * dx - 0.5 * dy) - half)
    if shape == "cross":
        arm, bar = r, r / 3
        return np.minimum(np.maximum(ax - arm, ay - bar), np.maximum(ay - arm, ax - bar))
    if shape == "ring":
        return np.abs(np.hypot(dx, dy) - 0.8 * r) - 0.25 * r
    if shape == "bar":  # horizontal
        return np.maximum(ax - 1.1 * r, ay - 0.35 * r)
    raise ValueError(f"unknown shape {shape!r}")


def event_params(event: Event) -> dict[str, np.ndarray]:
    """Per-frame x, y and scale; frame i sits at time (i + 0.5) / n, symmetric under reversal."""
    u = (2 * np.arange(event.frames) + 1 - event.frames) / event.frames  # 2 t - 1: exactly odd under reversal
    params = {name: np.full(event.frames, value) for name, value in STILL.items()}
    name, start, end = ACTIONS[event.action]
    params[name] = (start + end) / 2 + (end - start) / 2 * u  # so an opposite's frames are bit-identical reversed
    return params


def _rgb(colour: str) -> tuple[int, int, int]:
    return FILLER_RGB if colour == FILLER_COLOUR else COLOURS[colour]


def render_event(event: Event, background: int, size: int) -> np.ndarray:
    """uint8 ``[frames, size, size, 3]``: the object anti-aliased over the background."""
    p = {k: v[:, None, None] for k, v in event_params(event).items()}
    grid = np.arange(size) + 0.5
    dx = grid[None, None, :] - p["x"] * size
    dy = grid[None, :, None] - p["y"] * size
    alpha = np.clip(0.5 - _signed_distance(event.shape, dx, dy, RADIUS * size * p["scale"]), 0.0, 1.0)
    colour = np.asarray(_rgb(event.colour), dtype=np.float64)
    frames = background + alpha[..., None] * (colour - background)
    return np.rint(frames).astype(np.uint8)


def render(video: Video, size: int) -> np.ndarray:
    return np.concatenate([render_event(e, video.background, size) for e in video.events])


def pick_codec() -> str:
    """The first of CODECS this PyAV build can encode (libx264 gives H.264)."""
    import av

    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except ValueError:  # av's UnknownCodecError
            continue
    raise DataError(f"this PyAV build can encode none of {', '.join(CODECS)}")


def write_mp4(path: Path, frames: np.ndarray, fps: int, codec: str) -> None:
    """Encode RGB frames to ``path`` atomically; the bytes depend only on the frames and the PyAV build.

    One encoder thread: by default the thread count follows the CPUs this process may use, and
    x264 then cuts each frame into that many slices, so another machine (or another CPU affinity)
    encoded, and so decoded, other frames. See also CODEC_OPTIONS and the BITEXACT options.
    """
    import av

    def write(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4", container_options=BITEXACT_CONTAINER) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {**CODEC_OPTIONS.get(codec, {}), **BITEXACT_CODEC}
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())

    atomic_write_with(path, write)


# --------------------------------------------------------------------------- captions


def state_caption(event: Event, params: dict[str, float]) -> str:
    """What one frame shows, in the words the queries use: "a red circle is on the left", "a red circle"."""
    words = []
    for name, (low, below, high, above) in STATE_WORDS.items():
        value = params[name]
        words += [below] if value < low else [above] if value > high else []
    return f"{event.noun} is {' and '.join(words)}" if words else event.noun


def captions(video: Video, fps: int, split: str) -> list[dict]:
    """Frame-state captions: each run of frames of one event that shows the same state is one record.

    Every word a query uses for an object or an action's end state (colour, shape,
    left/right/top/bottom, big/small) is then grounded in single frames, so the
    frozen text tower of the pretrained CLIP tells "moves to the left" from
    "moves to the right" before ProPy trains anything.
    """
    out = []
    for e, (start, _) in zip(video.events, video.bounds):
        p = event_params(e)
        states = [state_caption(e, {k: float(v[i]) for k, v in p.items()}) for i in range(e.frames)]
        first = 0
        for i in range(1, e.frames + 1):
            if i == e.frames or states[i] != states[first]:
                out.append(
                    {
                        "vid_name": video.name,
                        "split": split,
                        "start": _seconds(start + first, fps),
                        "end": _seconds(start + i, fps),
                        "caption": states[first],
                    }
                )
                first = i
    return out


# --------------------------------------------------------------------------- statistics


def split_stats(videos: list[Video], queries: SplitQueries) -> dict:
    records, kinds = queries.records, queries.kinds
    durations = np.array([r.duration for r in {r.vid_name: r for r in records}.values()])
    ratios: dict[str, list[float]] = {}
    for r in records:
        ratios.setdefault(kinds[r.desc_id], []).append(r.ratio)
    all_ratios = np.array([r.ratio for r in records])
    pairs = Counter(v.probes[0].kind for v in videos)
    return {
        "videos": len(videos),
        "pairs": {k: pairs[k] // 2 for k in QUERY_KINDS},
        "events": sum(len(v.events) for v in videos),
        "queried_events": sum(1 for v in videos for e in v.events if not e.filler),
        "queries": len(records),
        "query_kinds": dict(sorted(Counter(kinds[r.desc_id] for r in records).items())),
        "dropped": dict(sorted(queries.dropped.items())),  # not unique, or the rival lost its probe
        "duration_s": {
            "min": float(durations.min()),
            "mean": round(float(durations.mean()), 3),
            "max": float(durations.max()),
            "total": round(float(durations.sum()), 3),
        },
        "ratio": {
            "mean": round(float(all_ratios.mean()), 4),
            "median": round(float(np.median(all_ratios)), 4),
            "below_0.2": round(float((all_ratios < 0.2).mean()), 4),
            "below_half": round(float((all_ratios < 0.5).mean()), 4),
        },
        "ratio_histogram": {
            "edges": RATIO_EDGES,
            "counts": {k: np.histogram(v, bins=RATIO_EDGES)[0].tolist() for k, v in sorted(ratios.items())},
        },
    }


# --------------------------------------------------------------------------- generation


def generate(cfg: SynthConfig, out: str | Path, progress: bool = True) -> dict:
    """Write the benchmark to ``out`` (via ``<out>.partial``); returns the statistics."""
    from tqdm import tqdm

    for split in SPLITS:
        if getattr(cfg.videos, split) % 2:
            raise ConfigError(f"synth.videos.{split}: videos come in (base, twin) pairs; give an even number")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    codec = pick_codec()
    _prepare_partial(partial, {"version": VERSION, "codec": codec, "synth": dataclasses.asdict(cfg)})
    prepare_output(partial, folder=True)  # temporary files of a killed run would be swapped into ``out``
    plan = {split: sample_split(cfg, split) for split in SPLITS}
    stats: dict = {"seed": cfg.seed, "size": cfg.size, "fps": cfg.fps, "codec": codec, "splits": {}}
    all_kinds: dict[str, str] = {}
    all_rivals: dict[str, list[str]] = {}
    all_captions: list[dict] = []
    for split, videos in plan.items():
        queries = split_records(videos, cfg.fps)
        write_annotations(partial / "annotations" / f"{split}.jsonl", queries.records)
        all_kinds.update(queries.kinds)
        all_rivals.update(queries.rivals)
        all_captions += [c for v in videos for c in captions(v, cfg.fps, split)]
        stats["splits"][split] = split_stats(videos, queries)
    todo = [v for videos in plan.values() for v in videos]
    for video in tqdm(todo, desc="synth", unit="video", disable=not progress):
        path = partial / "videos" / f"{video.name}.mp4"
        if not path.is_file():  # written by an interrupted run with the same settings
            write_mp4(path, render(video, cfg.size), cfg.fps, codec)
    atomic_write_json(partial / "query_kinds.json", all_kinds)
    atomic_write_json(partial / "rivals.json", all_rivals)
    atomic_write_text(partial / "captions.jsonl", "".join(json.dumps(c) + "\n" for c in all_captions))
    atomic_write_json(partial / "stats.json", stats)
    (partial / STAMP).unlink()
    swap_in(partial, out)
    return stats


def _prepare_partial(partial: Path, settings: dict) -> None:
    """Keep an interrupted run's files only if they were made with the same settings."""
    stamp = partial / STAMP
    if partial.exists() and (not stamp.is_file() or json.loads(stamp.read_text(encoding="utf-8")) != settings):
        shutil.rmtree(partial)
    atomic_write_json(stamp, settings)


# --------------------------------------------------------------------------- CLI
