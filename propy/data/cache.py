"""The frame cache: every video decoded once into uint8 frames, so training never decodes video
(written by :mod:`propy.data.extraction`).

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

Reading. :class:`FrameCache` checks a video's digest the first time a process reads it, so
frames damaged after ``extract`` stop a stage with an error instead of silently changing results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from propy.data.frames import frames_problem, read_frames
from propy.errors import DataError
from propy.runtime.files import file_digest

MANIFEST = "manifest.json"


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
