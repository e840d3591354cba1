"""``propy synth``: the synthetic PRVR benchmark, written as real mp4 files + canonical annotations.

The default study must run with no download, yet still ask the paper's questions.
The videos are built so that each question has a measurable answer.

Videos. A flat grey background, then 3-5 *events* back to back. An event is one
object (shape x colour, about a quarter of the frame side) doing one action. A
video never shows the same object twice, so a query's object picks out one event.

Actions come in opposite pairs (moves left/right, moves up/down, grows/shrinks,
appears/disappears). An action's frames are its opposite's frames in reverse order
(both interpolate one parameter between the same two ends at symmetric times), so
no single frame, and no pooling that ignores frame order, can tell the two apart.

Queries (``annotations/<split>.jsonl``). One per event, e.g. "a red circle moves
left", whose moment is that event. Then ``multi_event_queries`` per video, each
covering 2-3 consecutive events joined by ", then " (a coarser granularity); a
multi-event query never covers the whole video.

Uniqueness. In each split, events (object + action) are dealt from a shuffled deck
of every shape x colour x action (5 x 8 x 8 = 320). A fresh deck joins only when
the current one cannot serve the next draw, so a description repeats within a
split only once the split has used (nearly) all 320: at the default sizes, in
train but not in val or test. ``stats.json`` reports the largest repeat count.

Twins (hard negatives). Each split holds ``videos // 4`` twin pairs. A twin copies
its base's background, timings, shapes and actions. It flips ONE event's action to
the opposite (same object), and recolours every other event (same shape and action,
another colour, while the deck has one). So every twin query differs from every
base query, and the flipped pair differs only in the motion.

Query kinds (``query_kinds.json``), the exact rule:
- ``multi``: a query that describes several events.
- ``motion``: a single-event query (object o, action a) where another video of the
  same split shows o doing the opposite of a. That video shows the same object
  through the same states in reverse order, so only the motion tells the positive
  from it. Both flipped queries of every twin pair are ``motion``; chance meetings
  in the shuffled decks add more.
- ``single``: any other single-event query.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propy.config import SPLITS, SynthConfig, load_params
from propy.data.annotations import Record, write_annotations
from propy.errors import ConfigError, DataError
from propy.io import atomic_write_json, atomic_write_text, atomic_write_with, prepare_output

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 255),
    "yellow": (240, 220, 40),
    "magenta": (220, 60, 220),
    "cyan": (40, 210, 220),
    "white": (240, 240, 240),
    "orange": (255, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
# action -> (animated parameter, value at the start, value at the end); x, y are fractions of the frame side.
ACTIONS: dict[str, tuple[str, float, float]] = {
    "moves left": ("x", 0.75, 0.25),
    "moves right": ("x", 0.25, 0.75),
    "moves up": ("y", 0.75, 0.25),
    "moves down": ("y", 0.25, 0.75),
    "grows": ("scale", 0.6, 1.4),
    "shrinks": ("scale", 1.4, 0.6),
    "appears": ("alpha", 0.0, 2.0),  # clipped to 1: fades in over the first half, then stays
    "disappears": ("alpha", 2.0, 0.0),
}
# an action's opposite animates the same parameter between the same ends, the other way round
OPPOSITE = {
    a: next(b for b, spec in ACTIONS.items() if spec == (p, end, start)) for a, (p, start, end) in ACTIONS.items()
}
STILL = {"x": 0.5, "y": 0.5, "scale": 1.0, "alpha": 1.0}
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
VERSION = 2  # bump when the rendering or encoding changes: an interrupted run's videos are then not reused


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


@dataclass(frozen=True)
class Video:
    name: str
    background: int
    events: tuple[Event, ...]
    multi: tuple[tuple[int, int], ...]  # (first event, number of events) of each multi-event query

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """``[start, end)`` frame range of each event."""
        ends = np.cumsum([e.frames for e in self.events]).tolist()
        return list(zip([0] + ends[:-1], ends))


# --------------------------------------------------------------------------- sampling

Desc = tuple[str, str, str]  # (shape, colour, action) of an event


def _obj(desc: Desc) -> str:
    return f"{desc[1]} {desc[0]}"


class Deck:
    """Event descriptions dealt without repeats until all are used (then a fresh shuffled deck joins)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.all: list[Desc] = [(s, c, a) for s in SHAPES for c in COLOURS for a in ACTIONS]
        self.left: list[Desc] = []

    def draw(self, *preds) -> Desc:
        """The next description meeting the first predicate that any remaining one meets."""
        for _ in range(2):
            for pred in preds:
                for i, desc in enumerate(self.left):
                    if pred(desc):
                        return self.left.pop(i)
            self.left += [self.all[i] for i in self.rng.permutation(len(self.all))]
        raise RuntimeError("no description satisfies the predicates, even in a fresh deck")

    def take(self, desc: Desc) -> None:
        """Deal ``desc`` now (it must still be in the deck)."""
        self.left.remove(desc)


def _new_video(cfg: SynthConfig, deck: Deck, rng: np.random.Generator) -> Video:
    n = int(rng.integers(cfg.events_per_video[0], cfg.events_per_video[1] + 1))
    lo, hi = cfg.event_seconds
    events: list[Event] = []
    for _ in range(n):
        used = {e.obj for e in events}
        shape, colour, action = deck.draw(lambda d: _obj(d) not in used)
        events.append(Event(shape, colour, action, max(2, round(rng.uniform(lo, hi) * cfg.fps))))
    return Video("", int(rng.integers(*BACKGROUND)), tuple(events), _multi_spans(cfg, n, rng))


def _twin(base: Video, cfg: SynthConfig, deck: Deck, rng: np.random.Generator) -> Video | None:
    """``base`` with one action flipped and the other events recoloured (None if no flip is left in the deck)."""
    flips = [dataclasses.replace(e, action=OPPOSITE[e.action]) for e in base.events]
    flippable = [k for k, e in enumerate(flips) if (e.shape, e.colour, e.action) in deck.left]
    if not flippable:
        return None
    k = flippable[int(rng.integers(len(flippable)))]
    deck.take((flips[k].shape, flips[k].colour, flips[k].action))
    twin = {k: flips[k]}
    for j, e in enumerate(base.events):
        if j == k:
            continue
        used = {x.obj for x in twin.values()} | {e.obj}
        shape, colour, action = deck.draw(
            lambda d: d[0] == e.shape and d[2] == e.action and _obj(d) not in used,  # recoloured
            lambda d: _obj(d) not in used,
        )
        twin[j] = Event(shape, colour, action, e.frames)
    events = tuple(twin[j] for j in range(len(base.events)))
    return Video("", base.background, events, _multi_spans(cfg, len(events), rng))


def _multi_spans(cfg: SynthConfig, n: int, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    spans = [(s, length) for length in (2, 3) if length < n for s in range(n - length + 1)]  # never the whole video
    picks = rng.choice(len(spans), size=min(cfg.multi_event_queries, len(spans)), replace=False) if spans else []
    return tuple(spans[i] for i in sorted(picks))


def sample_split(cfg: SynthConfig, split: str) -> tuple[list[Video], int]:
    """The videos of one split (names ``<split><index>``, in shuffled order) and the number of twin pairs."""
    count = getattr(cfg.videos, split)
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    deck = Deck(rng)
    videos: list[Video] = []
    pairs = 0
    while len(videos) < count:
        base = _new_video(cfg, deck, rng)
        videos.append(base)
        twin = _twin(base, cfg, deck, rng) if pairs < count // 4 and len(videos) < count else None
        if twin is not None:
            videos.append(twin)
            pairs += 1
    order = rng.permutation(count)
    width = len(str(count - 1))
    return [dataclasses.replace(videos[j], name=f"{split}{i:0{width}d}") for i, j in enumerate(order)], pairs


# --------------------------------------------------------------------------- queries

def split_records(videos: list[Video], fps: int) -> tuple[list[Record], dict[str, str]]:
    """Canonical records of one split and the kind of each query (see the module docstring)."""
    shown = Counter((e.obj, e.action) for v in videos for e in v.events)
    records: list[Record] = []
    kinds: dict[str, str] = {}
    for v in videos:
        duration = _seconds(sum(e.frames for e in v.events), fps)
        bounds = v.bounds
        for k, (e, (start, end)) in enumerate(zip(v.events, bounds)):
            desc_id = f"{v.name}#e{k}"
            records.append(Record(v.name, desc_id, e.text, duration, (_seconds(start, fps), _seconds(end, fps))))
            kinds[desc_id] = "motion" if shown[(e.obj, OPPOSITE[e.action])] else "single"
        for j, (first, n) in enumerate(v.multi):
            desc_id = f"{v.name}#m{j}"
            desc = ", then ".join(e.text for e in v.events[first:first + n])
            ts = (_seconds(bounds[first][0], fps), _seconds(bounds[first + n - 1][1], fps))
            records.append(Record(v.name, desc_id, desc, duration, ts))
            kinds[desc_id] = "multi"
    return records, kinds


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
    raise ValueError(f"unknown shape {shape!r}")


def event_params(event: Event) -> dict[str, np.ndarray]:
    """Per-frame x, y, scale and alpha; frame i sits at time (i + 0.5) / n, symmetric under reversal."""
    t = (np.arange(event.frames) + 0.5) / event.frames
    params = {name: np.full(event.frames, value) for name, value in STILL.items()}
    name, start, end = ACTIONS[event.action]
    params[name] = start + (end - start) * t
    params["alpha"] = np.clip(params["alpha"], 0.0, 1.0)
    return params


def render_event(event: Event, background: int, size: int) -> np.ndarray:
    """uint8 ``[frames, size, size, 3]``: the object anti-aliased over the background."""
    p = {k: v[:, None, None] for k, v in event_params(event).items()}
    grid = np.arange(size) + 0.5
    dx = grid[None, None, :] - p["x"] * size
    dy = grid[None, :, None] - p["y"] * size
    alpha = np.clip(0.5 - _signed_distance(event.shape, dx, dy, RADIUS * size * p["scale"]), 0.0, 1.0) * p["alpha"]
    colour = np.asarray(COLOURS[event.colour], dtype=np.float64)
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


def captions(video: Video, fps: int, split: str) -> list[dict]:
    """One appearance caption per event, spanning the frames where its object is at least half visible."""
    out = []
    for e, (start, _) in zip(video.events, video.bounds):
        visible = np.flatnonzero(event_params(e)["alpha"] >= 0.5)
        out.append({
            "vid_name": video.name,
            "split": split,
            "start": _seconds(start + int(visible[0]), fps),
            "end": _seconds(start + int(visible[-1]) + 1, fps),
            "caption": e.noun,
        })
    return out


# --------------------------------------------------------------------------- statistics

def split_stats(videos: list[Video], records: list[Record], kinds: dict[str, str], pairs: int) -> dict:
    durations = np.array([r.duration for r in {r.vid_name: r for r in records}.values()])
    ratios: dict[str, list[float]] = {}
    for r in records:
        ratios.setdefault(kinds[r.desc_id], []).append(r.ratio)
    all_ratios = np.array([r.ratio for r in records])
    repeats = Counter((e.obj, e.action) for v in videos for e in v.events)
    return {
        "videos": len(videos),
        "twin_pairs": pairs,
        "events": sum(len(v.events) for v in videos),
        "queries": len(records),
        "query_kinds": dict(sorted(Counter(kinds[r.desc_id] for r in records).items())),
        "duration_s": {
            "min": float(durations.min()), "mean": round(float(durations.mean()), 3),
            "max": float(durations.max()), "total": round(float(durations.sum()), 3),
        },
        "ratio": {
            "mean": round(float(all_ratios.mean()), 4),
            "median": round(float(np.median(all_ratios)), 4),
            "below_half": round(float((all_ratios < 0.5).mean()), 4),
        },
        "ratio_histogram": {
            "edges": RATIO_EDGES,
            "counts": {k: np.histogram(v, bins=RATIO_EDGES)[0].tolist() for k, v in sorted(ratios.items())},
        },
        "max_description_repeats": max(repeats.values()),
    }


# --------------------------------------------------------------------------- generation

def generate(cfg: SynthConfig, out: str | Path, progress: bool = True) -> dict:
    """Write the benchmark to ``out`` (via ``<out>.partial``); returns the statistics."""
    from tqdm import tqdm

    objects = len(SHAPES) * len(COLOURS)
    if cfg.events_per_video[1] > objects:
        raise ConfigError(f"synth.events_per_video: at most {objects} (a video shows each object once)")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    codec = pick_codec()
    _prepare_partial(partial, {"version": VERSION, "codec": codec, "synth": dataclasses.asdict(cfg)})
    prepare_output(partial, folder=True)  # temporary files of a killed run would be swapped into ``out``
    plan = {split: sample_split(cfg, split) for split in SPLITS}
    stats: dict = {"seed": cfg.seed, "size": cfg.size, "fps": cfg.fps, "codec": codec, "splits": {}}
    all_kinds: dict[str, str] = {}
    all_captions: list[dict] = []
    for split, (videos, pairs) in plan.items():
        records, kinds = split_records(videos, cfg.fps)
        write_annotations(partial / "annotations" / f"{split}.jsonl", records)
        all_kinds.update(kinds)
        all_captions += [c for v in videos for c in captions(v, cfg.fps, split)]
        stats["splits"][split] = split_stats(videos, records, kinds, pairs)
    todo = [v for videos, _ in plan.values() for v in videos]
    for video in tqdm(todo, desc="synth", unit="video", disable=not progress):
        path = partial / "videos" / f"{video.name}.mp4"
        if not path.is_file():  # written by an interrupted run with the same settings
            write_mp4(path, render(video, cfg.size), cfg.fps, codec)
    atomic_write_json(partial / "query_kinds.json", all_kinds)
    atomic_write_text(partial / "captions.jsonl", "".join(json.dumps(c) + "\n" for c in all_captions))
    atomic_write_json(partial / "stats.json", stats)
    (partial / STAMP).unlink()
    _swap_in(partial, out)
    return stats


def _prepare_partial(partial: Path, settings: dict) -> None:
    """Keep an interrupted run's files only if they were made with the same settings."""
    stamp = partial / STAMP
    if partial.exists() and (not stamp.is_file() or json.loads(stamp.read_text(encoding="utf-8")) != settings):
        shutil.rmtree(partial)
    atomic_write_json(stamp, settings)


def _swap_in(partial: Path, out: Path) -> None:
    """Replace ``out`` by ``partial`` with renames only, so ``out`` is never half-written."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    if old.exists():
        shutil.rmtree(old)


# --------------------------------------------------------------------------- CLI

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (block 'synth')")
    parser.add_argument("--out", type=Path, required=True, help="output directory, e.g. data/synthetic")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    out = args.out
    started = time.perf_counter()
    stats = generate(params.synth, out)
    print(f"synth: {out} in {time.perf_counter() - started:.1f}s (codec {stats['codec']})")
    if stats["codec"] != "libx264":
        print(f"  note: libx264 is not available in this PyAV build; videos use {stats['codec']}, not H.264")
    for split, s in stats["splits"].items():
        print(
            f"  {split}: {s['videos']} videos ({s['twin_pairs']} twin pairs), {s['queries']} queries "
            f"{s['query_kinds']}, mean moment/video ratio {s['ratio']['mean']:.2f}, "
            f"description repeats <= {s['max_description_repeats']}"
        )
    return 0
