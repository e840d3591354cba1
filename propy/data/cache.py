"""Decode every video once into a uint8 frame cache, so training never decodes video.

Layout, per split (``<extract.root>/<split>/``): ``<vid_name>.npy`` (uint8
``[T, S, S, 3]``, see :func:`propy.data.video.read_video`) or, with ``extract.jpeg_quality``
set, ``<vid_name>.npz`` (the T frames as JPEG, see :mod:`propy.data.frames`), and ``manifest.json``::

    {"size": S, "fps": f, "max_frames": m, "jpeg_quality": q or null,
     "videos": {vid_name: {"file": "<vid_name>.npy", "num_frames": T, "duration": seconds,
                           "sha256": "<hex digest of the file's bytes>"}},
     "skipped": [vid_name, ...]}

A video shorter than its annotations' duration by more than ``extract.duration_tolerance``
seconds is a bad video like an unreadable one (its moments would lie past its end): an error
naming both durations, or listed in ``skipped`` with ``extract.skip_bad``.

Resuming. Each ``.npy`` is written atomically. Then a line describing it goes to
the split's journal (``.journal.jsonl``). A re-run reuses a video when its journal
line matches the current settings and source file (size, fps, max_frames, byte
size and mtime of the video) and its frame file is whole (see
:func:`propy.data.frames.frames_problem`: a raw ``.npy`` of exactly the recorded uint8 shape, or a
JPEG ``.npz`` whose offsets and bytes agree) and still has the SHA-256 recorded when it was
written; a damaged or foreign file is decoded again (bytes flipped inside a frame keep the header
and the size: only the digest sees them). A journal line of an older version, without a digest,
gets the digest of its whole file instead of a decode. An interrupted run thus
loses at most the video it was decoding. The manifest is removed when a run starts
and written last, atomically, so its presence means the split is complete.

Reading. :class:`FrameCache` checks a video's digest the first time a process reads it, so
frames damaged after ``extract`` stop a stage with an error instead of silently changing results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from propy.data.frames import frames_problem, read_frames, suffix, write_frames
from propy.data.video import read_video
from propy.errors import DataError
from propy.runtime.files import atomic_write_json, atomic_write_text, file_digest, prepare_output
from propy.runtime.hold import hold
from propy.runtime.progress import progress as reporting

MANIFEST = "manifest.json"
JOURNAL = ".journal.jsonl"


def listing(problems: dict[str, str]) -> str:
    """One indented line per video: ``  <vid>: <problem>``."""
    return "\n".join(f"  {vid}: {problem}" for vid, problem in problems.items())


class BadVideos(DataError):
    """Some videos of a split are missing, cannot be decoded or are too short; ``bad`` maps each to its problem."""

    def __init__(self, bad: dict[str, str]) -> None:
        self.bad = bad
        super().__init__(
            f"{len(bad)} video(s) missing, unreadable or shorter than annotated (set extract.skip_bad: true "
            f"to skip them):\n" + listing(bad)
        )


@dataclass
class Extracted:
    """What one split's extraction did."""

    manifest: dict
    decoded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    repaired: dict[str, str] = field(default_factory=dict)  # vid_name -> what was wrong with its cached file
    skipped: dict[str, str] = field(default_factory=dict)  # vid_name -> problem


def _read_journal(path: Path) -> dict[str, dict]:
    """Latest journal entry per video; a torn last line (interrupted write) is ignored."""
    entries: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                entries[entry.pop("vid_name")] = entry
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
                continue
    return entries


def _reusable(entry: dict | None, key: list | None, out_dir: Path) -> bool:
    """A journal entry still valid for this source and these settings (its frames are checked apart)."""
    return key is not None and entry is not None and entry.get("key") == key


def _cached_problem(path: Path, entry: dict, size: int) -> str | None:
    """What is wrong with a journal entry's cached file, or None; an entry without a digest (an
    older version's) gets the digest of its file, which is whole by its header and size."""
    problem = frames_problem(path, (entry["num_frames"], size, size, 3))
    if problem is not None:
        return problem
    digest = file_digest(path)
    if entry.setdefault("sha256", digest) != digest:
        return "its bytes differ from the SHA-256 recorded when it was written (damaged on disk)"
    return None


def _source_key(path: Path, size: int, fps: float, max_frames: int, quality: int | None) -> list | None:
    """What a cached video depends on; None when the source file is missing."""
    if not path.is_file():
        return None
    stat = path.stat()
    return [size, fps, max_frames, quality, stat.st_size, stat.st_mtime_ns]


def _too_short(source: Path, duration: float, annotated: float | None, tolerance: float) -> str | None:
    """The problem of a video shorter than its annotations say, beyond ``tolerance`` seconds."""
    if annotated is None or duration >= annotated - tolerance:
        return None
    return (
        f"{source}: the video lasts {duration:.2f} s but its annotations give duration {annotated:.2f} s "
        f"(shorter by more than extract.duration_tolerance = {tolerance:g} s: its moments would lie past "
        f"its end); replace the video or fix the annotations"
    )


def extract_split(
    names: list[str],
    video_dir: Path,
    video_ext: str,
    out_dir: Path,
    *,
    size: int,
    fps: float,
    max_frames: int,
    jpeg_quality: int | None = None,
    durations: dict[str, float] | None = None,
    duration_tolerance: float = 1.0,
    skip_bad: bool = False,
    desc: str = "extract",
    progress: bool = True,
) -> Extracted:
    """Cache every video in ``names`` under ``out_dir`` (resuming) and write the manifest.

    ``durations`` (seconds, per video, from the annotations) are compared with each video's
    own. Raises :class:`BadVideos` listing every missing, unreadable or too short video unless
    ``skip_bad``; the good videos are cached either way, so a re-run after a fix decodes only the rest.
    """
    prepare_output(out_dir, folder=True)
    durations = durations or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    journal = out_dir / JOURNAL
    previous = _read_journal(journal)
    result = Extracted(manifest={})
    entries: dict[str, dict] = {}
    with open(journal, "a", encoding="utf-8") as log:
        for vid in reporting(names, len(names), desc, enabled=progress):
            source = video_dir / f"{vid}{video_ext}"
            key = _source_key(source, size, fps, max_frames, jpeg_quality)
            entry = previous.get(vid)
            if _reusable(entry, key, out_dir):
                problem = _cached_problem(out_dir / str(entry.get("file", "")), entry, size)
                if problem is not None:
                    result.repaired[vid] = problem
                    entry = None
            else:
                entry = None
            if entry is not None:
                result.reused.append(vid)
            else:
                try:
                    video = read_video(source, fps, max_frames, size)
                except DataError as exc:
                    result.skipped[vid] = str(exc)
                    continue
                file = f"{vid}{suffix(jpeg_quality)}"
                write_frames(out_dir / file, video.frames, jpeg_quality)
                entry = {
                    "file": file,
                    "num_frames": len(video.frames),
                    "duration": video.duration,
                    "sha256": file_digest(out_dir / file),
                    "key": key,
                }
                stale = previous.get(vid, {}).get("file")
                if isinstance(stale, str) and stale != entry["file"]:  # the other format's file: no longer used
                    (out_dir / stale).unlink(missing_ok=True)
                log.write(json.dumps({"vid_name": vid, **entry}) + "\n")
                log.flush()
                result.decoded.append(vid)
                hold("extract", len(result.decoded))
            entries[vid] = entry  # kept in the journal even when too short: a fixed annotation needs no decode
            problem = _too_short(source, float(entry["duration"]), durations.get(vid), duration_tolerance)
            if problem:
                result.skipped[vid] = problem
    atomic_write_text(journal, "".join(json.dumps({"vid_name": v, **e}) + "\n" for v, e in entries.items()))
    if result.skipped and not skip_bad:
        raise BadVideos(result.skipped)
    result.manifest = {
        "size": size,
        "fps": fps,
        "max_frames": max_frames,
        "jpeg_quality": jpeg_quality,
        "videos": {
            v: {k: e[k] for k in ("file", "num_frames", "duration", "sha256")}
            for v, e in entries.items()
            if v not in result.skipped
        },
        "skipped": sorted(result.skipped),
    }
    atomic_write_json(out_dir / MANIFEST, result.manifest)
    return result


class FrameCache:
    """Read side of one split's cache: frames of a video by name, memory-mapped."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.dir = Path(root) / split
        self.manifest_path = self.dir / MANIFEST
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            self.size = int(manifest["size"])
            self.fps = float(manifest["fps"])
            self._videos: dict[str, dict] = manifest["videos"]
            self._verified: set[str] = set()
            self.skipped: list[str] = list(manifest.get("skipped", []))
        except FileNotFoundError:
            raise DataError(
                f"{self.manifest_path}: no frame cache manifest (run `python -m propy extract --split {split}`)"
            ) from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{self.manifest_path}: not a valid frame cache manifest ({exc!r})") from None
        self.names = list(self._videos)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, vid: str) -> bool:
        return vid in self._videos

    def _entry(self, vid: str) -> dict:
        try:
            return self._videos[vid]
        except KeyError:
            raise DataError(f"{self.manifest_path}: video {vid!r} is not in the frame cache") from None

    def require_size(self, size: int, model: str) -> FrameCache:
        """Itself, when its frames are ``size`` px as the CLIP ``model`` takes them; else a DataError
        (a cache extracted for another model would fail later with a tensor-size error)."""
        if self.size != size:
            raise DataError(
                f"{self.manifest_path}: frames are cached at {self.size} px but {model} takes {size} px; "
                f"re-run `python -m propy extract` (it decodes the videos again at {size} px)"
            )
        return self

    def num_frames(self, vid: str) -> int:
        return int(self._entry(vid)["num_frames"])

    def duration(self, vid: str) -> float:
        return float(self._entry(vid)["duration"])

    def frames(self, vid: str) -> np.ndarray:
        """uint8 ``[T, S, S, 3]``, every frame (raw caches: memory-mapped, read-only)."""
        return self.frames_at(vid, None)

    def verify(self, names: list[str] | None = None) -> FrameCache:
        """Itself, once the files of ``names`` (default: all) have the SHA-256 of the manifest; else a
        DataError. Each video is checked once per process; a stage whose DataLoader forks workers
        calls this first, so the workers inherit the checked set instead of re-reading every file."""
        for vid in self.names if names is None else names:
            if vid in self._verified:
                continue
            entry = self._entry(vid)
            path = self.dir / entry["file"]
            shape = (int(entry["num_frames"]), self.size, self.size, 3)
            # a file of the wrong shape or size is named more precisely by the read itself
            if "sha256" in entry and frames_problem(path, shape) is None and file_digest(path) != entry["sha256"]:
                raise DataError(
                    f"{path}: its bytes differ from the SHA-256 in {self.manifest_path} (damaged after "
                    "extraction); re-run `python -m propy extract`, which decodes the video again"
                )
            self._verified.add(vid)
        return self

    def frames_at(self, vid: str, index: np.ndarray | None) -> np.ndarray:
        """uint8 ``[len(index), S, S, 3]``: only the frames a sample needs are read (and decoded)."""
        path = self.verify([vid]).dir / self._entry(vid)["file"]
        frames = read_frames(path, index)
        expected = (self.num_frames(vid) if index is None else len(index), self.size, self.size, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise DataError(
                f"{path}: expected uint8 {list(expected)} as in {self.manifest_path}, "
                f"got {frames.dtype} {list(frames.shape)} (re-run `python -m propy extract`)"
            )
        return frames
