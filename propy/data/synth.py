"""The synthetic PRVR benchmark (v3), written as real mp4 files + canonical annotations.

The default study must run with no download, yet ask each of the paper's
questions separately. So every query has a designed *rival*: a gallery video
that matches everything in the query except the one thing its kind tests.

Videos. A flat grey background, then ``events_per_video`` *events* back to back.
An event is one object (shape x colour) doing one action. Actions come in opposite
pairs named by their end state (ends on the left/right, at the top/bottom, ends
big/small); an action's frames are its opposite's in reverse order, so no single frame and no
order-blind pooling tells the two apart. A video holds about ten events, so a
moment (one event; two or three for a composition) is short against its video
(TVR-like ratios); the slots no probe needs hold *fillers* (grey rings and bars,
never queried, so no query's object can match one).

Pairs. Videos come in (base, twin) pairs. A pair holds ``kinds_per_pair`` probes of
distinct kinds in each of its two videos (several queries per video, as in TVR; the
kinds dealt by ``kind_mix``), and each probe's rival is the other video of its pair:
- ``appearance``: "A just after B"; the base shows B then A, the twin B then A' (A's
  shape and action in another colour). One frame of the moment suffices: the control.
- ``order``: "A just after B"; the twin shows B then A doing the opposite action, the
  same frames reversed in time. Needs frame order.
- ``composition``: the base shows events A1..Ak consecutively (one query, "A1, then
  A2, ..."), the twin shows the same events in the same order, spread apart with
  other events between; and symmetrically a run C1..Cm of the twin is spread in the
  base. Only an event spanning the whole run prefers the own video: pyramid depth.
- ``context``: the base shows B then A ("A just after B"); the twin shows A and B
  apart; symmetrically D then C in the twin. A coarse event covering B and A matches
  the words but not the moment (VCMR at IoU >= 0.5): ADI.
Every query but a composition's names its moment A by the event B right before it,
and the moment is A alone. The anchor makes a query unique in a large gallery (a
single event's object and action are not: 50 objects x 6 actions) while its rival
still differs in the one thing the kind tests.

Uniqueness. A query is written only when its own video is the one video of its
split where it holds (its events, one right after another), so R@K has one
positive. The events of a video have distinct objects, drawn from a deck of every
(shape, colour, action) without repeats until the deck is used up.

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
from propy.runtime.environment import usable_cores
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
SLACK_SLOTS = 2  # a pair's video has at least the events its probes need, and up to this many more if they do not fit


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
        """First and last slot of the moment: the whole run of a composition, else the last slot only
        (the slot before it is the anchor the query names it by)."""
        return (self.slots[0], self.slots[-1]) if self.kind == "composition" else (self.slots[-1], self.slots[-1])


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
        return f"{ev[1].text} {CONTEXT_WORDS} {ev[0].text}"

    def probe_keys(self, probe: Probe) -> tuple[tuple[str, str], ...]:
        return tuple(self.events[s].key for s in probe.slots)

    def key_runs(self, length: int) -> set[tuple[tuple[str, str], ...]]:
        """The event keys of every ``length`` consecutive events."""
        keys = [e.key for e in self.events]
        return {tuple(keys[i : i + length]) for i in range(len(keys) - length + 1)}


# --------------------------------------------------------------------------- sampling

Desc = tuple[str, str, str]  # (shape, colour, action) of an event


def _obj(desc: Desc) -> str:
    return f"{desc[1]} {desc[0]}"


class Deck:
    """Event descriptions, dealt without repeats until all are used (then a fresh deck joins), so the
    objects and actions of a split are used about equally often."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.all: list[Desc] = [(s, c, a) for s in SHAPES for c in COLOURS for a in ACTIONS]
        self.left: list[Desc] = []

    def draw(self, pred=lambda d: True) -> Desc:
        """The next description meeting ``pred``."""
        for _ in range(2):
            for i, desc in enumerate(self.left):
                if pred(desc):
                    return self.left.pop(i)
            self.left += [self.all[i] for i in self.rng.permutation(len(self.all))]
        raise RuntimeError("no description satisfies the predicate, even in a fresh deck")


class Dealer:
    """Everything random about one split: event lengths, fillers, the deck."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.deck = Deck(rng)

    def frames(self) -> int:
        lo, hi = self.cfg.event_seconds
        return max(2, round(self.rng.uniform(lo, hi) * self.cfg.fps))

    def event(self, pred=lambda d: True) -> Event:
        desc = self.deck.draw(pred)
        return Event(desc[0], desc[1], desc[2], self.frames())

    def filler(self) -> Event:
        return Event(
            str(self.rng.choice(FILLER_SHAPES)), FILLER_COLOUR, str(self.rng.choice(list(ACTIONS))), self.frames()
        )

    def distinct(self, count: int, used: set[str], pred=lambda d: True) -> list[Event]:
        """``count`` events of objects not in ``used`` (which they join), each meeting ``pred``."""
        events = []
        for _ in range(count):
            events.append(self.event(lambda d: _obj(d) not in used and pred(d)))
            used.add(events[-1].obj)
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


def _arrange(
    n: int, runs: list[list[Event]], spreads: list[list[Event]], dealer: Dealer
) -> tuple[list[Event], list[list[int]]] | None:
    """``n`` slots: each of ``runs`` consecutive, each of ``spreads`` in order with no two of its events
    adjacent, fillers elsewhere. Returns the events and the slots of each run (None: no layout found)."""
    for _ in range(LAYOUT_TRIES):
        free, run_slots = list(range(n)), []
        for run in runs:
            starts = [s for s in range(n - len(run) + 1) if all(t in free for t in range(s, s + len(run)))]
            if not starts:
                break
            start = starts[int(dealer.rng.integers(len(starts)))]
            run_slots.append(list(range(start, start + len(run))))
            free = [s for s in free if s not in run_slots[-1]]
        else:
            spread_slots = []
            for spread in spreads:
                picked = _spread_slots(free, len(spread), dealer.rng)
                if picked is None:
                    break
                spread_slots.append(picked)
                free = [s for s in free if s not in picked]
            else:
                placed = {
                    s: e
                    for slots, events in zip(run_slots + spread_slots, runs + spreads)
                    for s, e in zip(slots, events)
                }
                return [placed[s] if s in placed else dealer.filler() for s in range(n)], run_slots
    return None


def _video(n: int, runs: list[list[Event]], spreads: list[list[Event]], dealer: Dealer):
    """``_arrange`` in ``n`` slots, or a few more when the pair's events do not fit (its video is longer)."""
    need = sum(map(len, runs + spreads))
    for slots in range(max(n, need), max(n, need) + SLACK_SLOTS + 1):
        laid = _arrange(slots, runs, spreads, dealer)
        if laid is not None:
            return laid
    sizes = " + ".join(str(len(r)) for r in runs + spreads)
    raise ConfigError(
        f"synth: cannot lay out {sizes} events (runs, then spread ones) in {n} to {max(n, need) + SLACK_SLOTS} "
        "slots; raise synth.events_per_video or lower synth.kinds_per_pair / synth.composition_events"
    )


def _pair(kinds: tuple[str, ...], dealer: Dealer) -> tuple[Video, Video]:
    """A (base, twin) pair holding one probe of each of ``kinds`` in each video; see the module docstring."""
    cfg, rng = dealer.cfg, dealer.rng
    n = int(rng.integers(cfg.events_per_video[0], cfg.events_per_video[1] + 1))
    background = int(rng.integers(*BACKGROUND))
    used: set[str] = set()
    base_runs: list[list[Event]] = []
    twin_runs: list[list[Event]] = []
    base_spreads: list[list[Event]] = []
    twin_spreads: list[list[Event]] = []
    for kind in kinds:
        if kind == "appearance":  # the moment's object in another colour, doing the same action
            (anchor,) = dealer.distinct(1, used)
            (moment,) = dealer.distinct(1, used)
            (other,) = dealer.distinct(1, used, lambda d, m=moment: (d[0], d[2]) == (m.shape, m.action))
            base_runs.append([anchor, moment])
            twin_runs.append([anchor, dataclasses.replace(moment, colour=other.colour)])
        elif kind == "order":  # the moment's object doing the opposite action: its frames reversed
            (anchor,) = dealer.distinct(1, used)
            (moment,) = dealer.distinct(1, used)
            base_runs.append([anchor, moment])
            twin_runs.append([anchor, dataclasses.replace(moment, action=OPPOSITE[moment.action])])
        else:
            k_base, k_twin = (2, 2) if kind == "context" else _run_lengths(cfg.composition_events, rng)
            a, c = dealer.distinct(k_base, used), dealer.distinct(k_twin, used)
            base_runs.append(a)
            twin_runs.append(c)
            if kind == "context":  # spread in either order: never B right before A
                a, c = (a if rng.random() < 0.5 else a[::-1]), (c if rng.random() < 0.5 else c[::-1])
            base_spreads.append(c)
            twin_spreads.append(a)
    base_events, base_slots = _video(n, base_runs, base_spreads, dealer)
    twin_events, twin_slots = _video(n, twin_runs, twin_spreads, dealer)
    return (
        Video("", background, tuple(base_events), tuple(Probe(k, tuple(s)) for k, s in zip(kinds, base_slots)), -1),
        Video("", background, tuple(twin_events), tuple(Probe(k, tuple(s)) for k, s in zip(kinds, twin_slots)), -1),
    )


def _run_lengths(bounds: list[int], rng: np.random.Generator) -> tuple[int, int]:
    """Composition run lengths (base, twin), each in ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1)), int(rng.integers(bounds[0], bounds[1] + 1))


def _kind_plan(cfg: SynthConfig, pairs: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """The kinds of each pair: ``kinds_per_pair`` distinct kinds, each kind in a share of all the pairs'
    probes given by ``kind_mix`` (largest remainders), dealt so that every pair takes the kinds with the
    most probes left; the pairs in shuffled order."""
    weights = np.array([cfg.kind_mix.get(k, 0.0) for k in QUERY_KINDS], dtype=np.float64)
    per_pair = min(cfg.kinds_per_pair, int((weights > 0).sum()))
    exact, free = np.zeros_like(weights), weights > 0
    while True:  # shares of pairs x per_pair probes; a kind in every pair passes its excess to the others
        exact[free] = weights[free] / weights[free].sum() * (pairs * per_pair - exact[~free].sum())
        full = free & (exact > pairs)
        if not full.any():
            break
        exact[full], free = pairs, free & ~full
    left = np.floor(exact + 1e-9).astype(int)
    for i in np.argsort(-(exact - left), kind="stable")[: pairs * per_pair - left.sum()]:
        left[i] += 1
    plan = []
    for _ in range(pairs):
        order = np.lexsort((rng.permutation(len(QUERY_KINDS)), -left))  # most left first, ties at random
        picked = sorted(order[:per_pair].tolist())
        left[picked] -= 1
        plan.append(tuple(QUERY_KINDS[i] for i in picked))
    return [plan[i] for i in rng.permutation(len(plan))]


def sample_split(cfg: SynthConfig, split: str) -> list[Video]:
    """The videos of one split (names ``<split><index>``, in shuffled order), partners linked."""
    count = getattr(cfg.videos, split)
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    dealer = Dealer(cfg, rng)
    videos: list[Video] = []
    for kinds in _kind_plan(cfg, count // 2, rng):
        base, twin = _pair(kinds, dealer)
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
    lengths = {len(p.slots) for v in videos for p in v.probes}
    # videos showing each run of keys; a probe's slots are a run of its own video, so 1 means no other video
    shown = Counter(run for v in videos for n in lengths for run in v.key_runs(n))
    unique = [[shown[v.probe_keys(p)] == 1 for p in v.probes] for v in videos]
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
    pairs = Counter(p.kind for v in videos for p in v.probes)
    return {
        "videos": len(videos),
        "pairs": {k: pairs[k] // 2 for k in QUERY_KINDS},  # pairs holding a probe of the kind
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


def generate(cfg: SynthConfig, out: str | Path, progress: bool = True, workers: int | None = None) -> dict:
    """Write the benchmark to ``out`` (via ``<out>.partial``); returns the statistics. ``workers``:
    processes that encode the videos (default: one per usable core once there are enough videos)."""
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
    # a file already there was written by an interrupted run with the same settings (written atomically)
    todo = [v for videos in plan.values() for v in videos if not (partial / "videos" / f"{v.name}.mp4").is_file()]
    write_videos(todo, partial / "videos", cfg, codec, progress, workers)
    atomic_write_json(partial / "query_kinds.json", all_kinds)
    atomic_write_json(partial / "rivals.json", all_rivals)
    atomic_write_text(partial / "captions.jsonl", "".join(json.dumps(c) + "\n" for c in all_captions))
    atomic_write_json(partial / "stats.json", stats)
    (partial / STAMP).unlink()
    swap_in(partial, out)
    return stats


def write_video(video: Video, folder: Path, size: int, fps: int, codec: str) -> None:
    write_mp4(folder / f"{video.name}.mp4", render(video, size), fps, codec)


# Below this many videos, encoding them here is quicker than starting processes (half a second each).
PARALLEL_FROM = 64


def write_videos(
    videos: list[Video], folder: Path, cfg: SynthConfig, codec: str, progress: bool, workers: int | None = None
) -> None:
    """Render and encode ``videos`` into ``folder`` in ``workers`` processes: a file's bytes depend on its
    video alone (one encoder thread each), so how the videos are shared out changes none of them."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    from multiprocessing import get_context

    from tqdm import tqdm

    write = partial(write_video, folder=folder, size=cfg.size, fps=cfg.fps, codec=codec)
    if workers is None:
        workers = usable_cores() if len(videos) >= PARALLEL_FROM else 1
    bar = tqdm(total=len(videos), desc="synth", unit="video", disable=not progress)
    if workers <= 1:
        for video in videos:
            write(video)
            bar.update()
    else:  # spawned, not forked: the caller may hold torch's OpenMP threads, which a fork would not carry
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for _ in pool.map(write, videos, chunksize=8):
                bar.update()
    bar.close()


def _prepare_partial(partial: Path, settings: dict) -> None:
    """Keep an interrupted run's files only if they were made with the same settings."""
    stamp = partial / STAMP
    if partial.exists() and (not stamp.is_file() or json.loads(stamp.read_text(encoding="utf-8")) != settings):
        shutil.rmtree(partial)
    atomic_write_json(stamp, settings)


# --------------------------------------------------------------------------- CLI
