"""Search your own videos by text: index a folder once, then query it (the Python API).

ProPy scores a query against a video by the max cosine over the video's Ne events, and each
event spans a known part of the video, so one matrix product over every stored event gives
both the ranked videos and, per video, the moments that matched. Indexing decodes and samples
each video exactly as ``propy extract`` + ``propy evaluate`` do (``read_video`` at
``extract.fps`` capped by ``extract.max_frames``, then the evaluation segment centres), so a
search ranks a gallery exactly as ``evaluate`` does for the same model.

    from propy.search.engine import add_videos, open_index
    add_videos("my_videos", "my_index", "params.yaml", variant="full")    # incremental, resumable
    index = open_index("my_index")                                         # refuses another model
    for hit in index.search("a red cross moves left", k=5):
        print(hit.rank, hit.path, hit.score, [(m.start, m.end) for m in hit.moments])

The index remembers the params file, variant and checkpoint it was built with, and their
fingerprint (``propy.model.checkpoint.fingerprint`` + the trained weights' hash + the sampling and
the event normalisation). Opening it recomputes the fingerprint and refuses a mismatch, since
query embeddings of another model would be compared with stale event embeddings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from propy.config import TRAINED_KINDS
from propy.errors import ConfigError, DataError
from propy.model.checkpoint import differences, file_digest, fingerprint, json_digest
from propy.runtime.files import prepare_output
from propy.runtime.progress import progress
from propy.search.store import FileKey, IndexStore, Located, Video, scan

# --------------------------------------------------------------------------- the model side


def index_fingerprint(params, checkpoint: Path | None) -> dict:
    """What the stored events depend on: model + CLIP (``propy.model.checkpoint.fingerprint``), the trained
    weights' SHA-256 (None for a zero-shot baseline), frame sampling and event normalisation."""
    from propy.model.configs import model_input_size

    trained = None
    if params.model.kind in TRAINED_KINDS:
        if checkpoint is None:
            raise DataError(
                f"variant {params.variant!r} is trained: pass its weights with --checkpoint "
                f"(the study writes models/<dataset>/{params.variant}-s<seed>/best.pt)"
            )
        if not checkpoint.is_file():
            raise DataError(
                f"{checkpoint}: no trained weights for variant {params.variant!r} (train it with "
                f"`python -m propy train --variant {params.variant}`, or pass --checkpoint)"
            )
        trained = f"sha256:{file_digest(checkpoint)}"
    return {
        **fingerprint(params),
        "trained": trained,
        "sampling": {
            "fps": params.extract.fps,
            "max_frames": params.extract.max_frames,
            "size": model_input_size(params),
        },
        "normalize_events": params.eval.normalize_events,
    }


class Encoder:
    """The variant's model on ``device``: frames -> events as stored, text -> unit query vector."""

    def __init__(self, params, checkpoint: Path, device=None) -> None:
        import torch

        from propy.model.backbone import load_clip
        from propy.model.checkpoint import pick_device
        from propy.model.loading import load_model

        if params.model.kind == "msl":
            raise ConfigError(
                f"variant {params.variant!r}: model.kind msl scores a query against a video's frames "
                "as well as its proposals, which the index (one vector per event) cannot store; "
                "index a variant of another kind"
            )
        self.params = params
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.backbone = load_clip(params.clip)
        self.model, _ = load_model(params, self.backbone, checkpoint, self.device)

    @property
    def proposals(self) -> np.ndarray:
        return self.model.proposals.cpu().numpy().astype(np.float64)

    def frames(self, path: Path):
        """[Nf, 3, S, S] model input of one video file; DataError when PyAV cannot read it."""
        from propy.data.video import normalize, read_video, sample_indices
        from propy.model.configs import model_input_size

        cfg = self.params.extract
        video = read_video(path, cfg.fps, cfg.max_frames, model_input_size(self.params))
        index = sample_indices(len(video.frames), self.params.model.num_frames, train=False)
        return normalize(video.frames[index], self.backbone.mean, self.backbone.std), video.duration

    def videos(self, frames: list) -> np.ndarray:
        """float32 [B, Ne, D] events of a batch, L2-normalised when ``eval.normalize_events``
        (the same ``F.normalize`` that ``propy.model.network.scores`` applies at evaluation)."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            events = self.model.encode_video(torch.stack(frames).to(self.device)).float()
            if self.params.eval.normalize_events:
                events = F.normalize(events, dim=-1)
        return events.cpu().numpy()

    def text(self, query: str) -> np.ndarray:
        """float32 [D] unit query embedding (tokenised with ``train.max_words`` as in evaluation)."""
        import torch
        import torch.nn.functional as F

        from propy.model.backbone import tokenize

        tokens = tokenize(self.backbone.tokenizer, [query], self.params.train.max_words).to(self.device)
        with torch.inference_mode():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)[0].cpu().numpy()


# --------------------------------------------------------------------------- indexing


@dataclass
class IndexRun:
    """What one ``add_videos`` call did."""

    index: Path
    encoded: list[str] = field(default_factory=list)  # paths (relative to the folder) decoded and encoded now
    unchanged: int = 0  # videos whose events the index already held
    resumed: int = 0  # videos encoded by an interrupted earlier run (kept, not encoded again)
    removed: list[str] = field(default_factory=list)  # indexed before, gone from the folder now
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not indexed
    videos: int = 0  # videos in the index afterwards
    seconds: float = 0.0


def add_videos(
    video_dir: str | Path,
    index_dir: str | Path,
    params_path: str | Path = "params.yaml",
    variant: str = "full",
    checkpoint: str | Path | None = None,
    device=None,
    show_progress: bool = True,
) -> IndexRun:
    """Index every video under ``video_dir`` into ``index_dir``: encode new and changed files
    (by path, size and mtime), drop deleted ones, keep the rest; resume an interrupted run.

    Files PyAV cannot read (empty, not a media file, no video stream, no duration) are
    listed in ``IndexRun.skipped`` with the reason and in the manifest, and not retried
    until they change. A ConfigError refuses an index of another model or another folder.
    """
    from propy.config import load_params

    started = time.perf_counter()
    video_dir, index_dir = Path(video_dir).resolve(), Path(index_dir).resolve()
    if not video_dir.is_dir():
        raise DataError(f"{video_dir}: no such folder of videos")
    prepare_output(index_dir, folder=True)  # an output that cannot be written fails now, not after a batch
    params = load_params(params_path, variant)
    checkpoint = Path(checkpoint) if checkpoint else None
    wanted = index_fingerprint(params, checkpoint)
    model_id = json_digest(wanted)
    store = IndexStore(index_dir)
    old = store.manifest()
    if old is not None:
        _check_same(old, wanted, index_dir, "index it into another --out folder, or delete it to rebuild")
        if old["root"] != str(video_dir):
            raise ConfigError(
                f"{index_dir}: indexes the videos of {old['root']}, not {video_dir}; "
                "use another --out folder per video folder"
            )
    stored = store.stored(old, model_id)
    old_skipped = {s["path"]: s for s in (old or {}).get("skipped", [])}
    run = IndexRun(index=index_dir)
    kept: dict[str, Located] = {}
    todo: list[FileKey] = []
    for key in scan(video_dir, exclude=index_dir):
        if key.path in stored and stored[key.path].video.key == key:
            kept[key.path] = stored[key.path]
        elif (
            key.path in old_skipped
            and FileKey(key.path, old_skipped[key.path]["size"], old_skipped[key.path]["mtime_ns"]) == key
        ):
            run.skipped[key.path] = old_skipped[key.path]["reason"]
        elif key.size == 0:
            run.skipped[key.path] = "empty file (0 bytes)"
        else:
            todo.append(key)
    present = set(kept) | {k.path for k in todo}
    run.removed = sorted(v["path"] for v in (old or {}).get("videos", []) if v["path"] not in present)
    run.unchanged = sum(1 for p in kept if old is not None and kept[p].file == old["events"])
    run.resumed = len(kept) - run.unchanged
    old_bad = {p: s["reason"] for p, s in old_skipped.items()}
    if old is not None and not todo and not run.removed and run.unchanged == len(kept) and run.skipped == old_bad:
        run.videos, run.seconds = len(kept), time.perf_counter() - started
        return run  # up to date: nothing to rewrite

    encoder: Encoder | None = None
    batch_frames: list = []
    batch_videos: list[Video] = []

    def flush() -> None:
        if batch_frames:
            store.add_part(encoder.videos(batch_frames), batch_videos, model_id)
            run.encoded.extend(v.key.path for v in batch_videos)
            batch_frames.clear()
            batch_videos.clear()

    for key in progress(todo, len(todo), desc="index", enabled=show_progress):
        encoder = encoder or Encoder(params, checkpoint, device)
        try:
            frames, duration = encoder.frames(video_dir / key.path)
        except DataError as exc:
            run.skipped[key.path] = str(exc).removeprefix(f"{video_dir / key.path}: ")
            continue
        batch_frames.append(frames)
        batch_videos.append(Video(key, duration))
        if len(batch_frames) == params.eval.batch_videos:
            flush()
    flush()

    stored = store.stored(old, model_id)  # now with this run's parts
    located = [stored[p] for p in sorted(set(kept) | set(run.encoded))]
    if not located:
        raise DataError(
            f"{video_dir}: no video that PyAV can read ({len(run.skipped)} file(s) skipped)"
            + "".join(f"\n  {p}: {why}" for p, why in sorted(run.skipped.items()))
        )
    if encoder is not None:
        proposals, dim = encoder.proposals, store.width(located[0])
    else:
        proposals, dim = np.array(old["proposals"]), old["dim"]
    manifest = {
        "fingerprint": wanted,
        "build": {
            "params": str(Path(params_path).resolve()),
            "variant": variant,
            "checkpoint": str(checkpoint.resolve()) if wanted["trained"] else None,
        },
        "root": str(video_dir),
        "num_events": len(proposals),
        "dim": dim,
        "proposals": proposals.tolist(),
        "videos": [where.video.to_json() for where in located],
        "skipped": [{**_key_json(video_dir, p), "reason": why} for p, why in sorted(run.skipped.items())],
    }
    store.commit(manifest, (len(located), len(proposals), dim), lambda out: store.gather(located, out))
    run.videos, run.seconds = len(located), time.perf_counter() - started
    return run


def _key_json(root: Path, path: str) -> dict:
    key = FileKey.of(root, root / path)
    return {"path": key.path, "size": key.size, "mtime_ns": key.mtime_ns}


def _check_same(manifest: dict, wanted: dict, index_dir: Path, advice: str) -> None:
    """ConfigError naming every setting in which ``wanted`` differs from the index's model."""
    diff = differences(manifest["fingerprint"], wanted, ("index", "now"))
    if diff:
        build = manifest.get("build", {})
        raise ConfigError(
            f"{index_dir}: was built with another model (variant {build.get('variant')!r} of "
            f"{build.get('params')}, checkpoint {build.get('checkpoint')}); what differs:\n  "
            + "\n  ".join(diff)
            + f"\n{advice}"
        )


# --------------------------------------------------------------------------- searching


def printable(text: str) -> str:
    """``text`` as any output can encode it: the bytes of a file name that are not UTF-8 (Python
    keeps them as lone surrogates, which no encoder accepts) appear as ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Moment:
    event: int  # index of the event (row of ``model.proposals``)
    start: float  # seconds
    end: float
    score: float  # cosine of the query with this event


@dataclass(frozen=True)
class Hit:
    """One returned video: its score is its best event's; ``moments`` the best distinct events."""

    rank: int
    path: Path
    score: float
    duration: float
    moments: list[Moment]
    event_scores: np.ndarray  # [Ne] cosine of the query with every event
    spans: np.ndarray  # [Ne, 2] seconds

    @property
    def shown_path(self) -> str:
        return printable(str(self.path))

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "path": str(self.path),
            "score": self.score,
            "duration": self.duration,
            "moments": [{"start": m.start, "end": m.end, "score": m.score} for m in self.moments],
        }


class Gallery:
    """The stored events of every video, searched by brute force: one [Nv*Ne, D] x [D] product.

    Exact, and fast enough on one machine (docs/search.md gives the measured latency); an
    approximate index would replace :meth:`event_scores` only.
    """

    def __init__(
        self, root: Path, paths: list[str], durations: np.ndarray, proposals: np.ndarray, events: np.ndarray
    ) -> None:
        self.root = root
        self.paths = paths  # relative to root: 100k Path objects would take most of the load time
        self.durations = np.asarray(durations, dtype=np.float64)
        self.proposals = np.asarray(proposals, dtype=np.float64)
        self.events = events
        self._flat = events.reshape(-1, events.shape[-1])

    def __len__(self) -> int:
        return len(self.paths)

    def event_scores(self, query: np.ndarray) -> np.ndarray:
        """[Nv, Ne] cosine (or dot product, for un-normalised events) of a unit query with each event."""
        return (self._flat @ np.asarray(query, dtype=np.float32)).reshape(len(self.paths), -1)

    def search(self, query: np.ndarray, k: int = 10, moments: int = 3) -> list[Hit]:
        """The ``k`` best videos for a query embedding, best first (ties: index order, as
        ``propy evaluate`` breaks them), each with up to ``moments`` non-overlapping moments."""
        if k < 1 or moments < 1:
            raise ConfigError(f"k and moments must be at least 1, got k={k}, moments={moments}")
        per_event = self.event_scores(query)
        best = per_event.max(axis=1)
        k = min(k, len(best))
        kth = np.partition(best, len(best) - k)[len(best) - k]
        candidates = np.flatnonzero(best >= kth)
        top = candidates[np.lexsort((candidates, -best[candidates]))][:k]
        hits = []
        for rank, v in enumerate(top, start=1):
            spans = self.proposals * self.durations[v]
            hits.append(
                Hit(
                    rank,
                    self.root / self.paths[v],
                    float(best[v]),
                    float(self.durations[v]),
                    distinct_moments(per_event[v], spans, moments),
                    per_event[v].copy(),
                    spans,
                )
            )
        return hits


def distinct_moments(scores: np.ndarray, spans: np.ndarray, count: int) -> list[Moment]:
    """The best event, then the next best ones that overlap none listed before (at most ``count``).

    Pyramid events nest and half-overlap, so the runner-up event is usually the best one's parent
    or neighbour: the same moment again. Non-overlap keeps only other places in the video."""
    picked: list[Moment] = []
    for e in np.argsort(-scores, kind="stable"):
        start, end = spans[e]
        if all(end <= m.start or start >= m.end for m in picked):
            picked.append(Moment(int(e), float(start), float(end), float(scores[e])))
            if len(picked) == count:
                break
    return picked


class VideoIndex:
    """An opened index: its gallery and the model that encodes queries for it."""

    def __init__(self, folder: Path, manifest: dict, gallery: Gallery, encoder: Encoder | None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.gallery = gallery
        self.encoder = encoder

    def search(self, query: str, k: int = 10, moments: int = 3) -> list[Hit]:
        if not query.strip():
            raise ConfigError("the query is empty: give the words of the moment you look for")
        if self.encoder is None:
            raise ConfigError("this index was opened without a model (with_model=False): use gallery.search")
        return self.gallery.search(self.encoder.text(query), k, moments)


def open_index(
    index_dir: str | Path,
    params_path: str | Path | None = None,
    variant: str | None = None,
    checkpoint: str | Path | None = None,
    device=None,
    with_model: bool = True,
) -> VideoIndex:
    """Load an index and the model it was built with (params, variant and checkpoint default to
    the ones it records); a ConfigError names every setting in which that model differs now."""
    from propy.config import load_params

    folder = Path(index_dir)
    store = IndexStore(folder)
    manifest = store.require_manifest()
    build = manifest["build"]
    encoder = None
    if with_model:
        variant = variant or build["variant"]
        params = load_params(params_path or build["params"], variant)
        recorded = checkpoint or build["checkpoint"]
        checkpoint = Path(recorded) if recorded else None
        _check_same(
            manifest,
            index_fingerprint(params, checkpoint),
            folder,
            "search it with the model it was built with (--params/--variant/--checkpoint), "
            "or re-index the videos into a new folder",
        )
        encoder = Encoder(params, checkpoint, device)
    gallery = Gallery(
        Path(manifest["root"]),
        [v["path"] for v in manifest["videos"]],
        np.array([v["duration"] for v in manifest["videos"]]),
        np.array(manifest["proposals"]),
        store.events(manifest),
    )
    return VideoIndex(folder, manifest, gallery, encoder)
