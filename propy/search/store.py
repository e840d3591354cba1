"""The on-disk video index: a manifest, one event matrix, and the parts of an unfinished run.

Layout of an index folder::

    index.json          the manifest, written last: its presence means a complete index
    events-<id>.npy     float32 [Nv, Ne, D]: row v holds the events of manifest video v, as scored
    parts/<id>.npy      events of the videos a running (or interrupted) update has encoded so far
    parts.jsonl         one line per part: which videos it holds, and for which model

Why this shape: searching wants one contiguous matrix (one product over all events), and an
interrupted update must neither corrupt the index nor lose its work. So an update writes each
encoded batch as its own atomic part plus a journal line, and only at the end merges the old
matrix and the parts into a new ``events-<id>.npy``, then replaces the manifest (the commit),
then deletes what the new manifest no longer names. A reader sees the old index or the new one,
never a mixture; a re-run after an interruption reuses every part its journal lists.

Torch-free: the search side needs only numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from propy.errors import DataError
from propy.runtime.files import (
    atomic_save_npy,
    atomic_write_json,
    atomic_write_with,
    read_json,
)

FORMAT = 1
MANIFEST = "index.json"
JOURNAL = "parts.jsonl"
PARTS = "parts"


@dataclass(frozen=True)
class FileKey:
    """A file as the index knows it: path relative to the indexed folder, byte size, mtime.

    A file whose key is unchanged is not decoded again."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, root: Path, path: Path) -> FileKey:
        stat = path.stat()
        return cls(path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Video:
    """An indexed video: its file key and its length in seconds (event spans scale with it)."""

    key: FileKey
    duration: float

    def to_json(self) -> dict:
        return {**asdict(self.key), "duration": self.duration}

    @classmethod
    def from_json(cls, obj: dict) -> Video:
        return cls(FileKey(obj["path"], int(obj["size"]), int(obj["mtime_ns"])), float(obj["duration"]))


@dataclass(frozen=True)
class Located:
    """Where a video's events are stored: a file of the index folder and a row in it."""

    video: Video
    file: str
    row: int


def scan(root: Path, exclude: Path | None = None) -> list[FileKey]:
    """Every non-hidden file under ``root`` (recursively, symlinks followed), sorted by path;
    ``exclude`` (the index folder, when it lies inside) is left out.

    Each real folder is walked once and each real file listed once (under the first path the walk
    meets), so a link back up the tree (``ln -s . videos/self``) neither loops nor lists a video again."""
    keys = []
    folders: set[str] = set()
    files_seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(here)
        if real in folders:
            dirs[:] = []
            continue
        folders.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (exclude is None or here / d != exclude))
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or not path.is_file() or os.path.realpath(path) in files_seen:
                continue
            files_seen.add(os.path.realpath(path))
            keys.append(FileKey.of(root, path))
    return sorted(keys, key=lambda k: k.path)


def _ends_torn(path: Path) -> bool:
    """Whether a file's last line lacks its newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


class IndexStore:
    """Reads and writes one index folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.dir = Path(folder)
        self.manifest_path = self.dir / MANIFEST

    def manifest(self) -> dict | None:
        """The committed manifest, or None when the folder holds no complete index yet."""
        if not self.manifest_path.is_file():
            return None
        manifest = read_json(self.manifest_path, "no index manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DataError(
                f"{self.manifest_path}: not a propy video index of format {FORMAT} "
                "(re-create it with `python -m propy index` into a new --out folder)"
            )
        return manifest

    def require_manifest(self) -> dict:
        manifest = self.manifest()
        if manifest is None:
            raise DataError(
                f"{self.dir}: no video index here (no {MANIFEST}; "
                "build one with `python -m propy index VIDEO_DIR --out INDEX_DIR`)"
            )
        return manifest

    def events(self, manifest: dict, mmap: bool = False) -> np.ndarray:
        """The committed event matrix [Nv, Ne, D], checked against the manifest."""
        path = self.dir / manifest["events"]
        try:
            events = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the index's event matrix ({exc}); re-create the index") from None
        expected = (len(manifest["videos"]), manifest["num_events"], manifest["dim"])
        if events.shape != expected or events.dtype != np.float32:
            raise DataError(
                f"{path}: expected float32 {list(expected)} as {self.manifest_path} says, "
                f"got {events.dtype} {list(events.shape)}; re-create the index"
            )
        bad = np.flatnonzero(~np.isfinite(events).all(axis=(1, 2)))  # a NaN video would silently never rank
        if bad.size:
            raise DataError(
                f"{path}: the events of {bad.size} video(s) are not finite numbers (NaN or inf), "
                f"e.g. {manifest['videos'][bad[0]]['path']}; the file is damaged: re-create the index"
            )
        return events

    def stored(self, manifest: dict | None, model: str) -> dict[str, Located]:
        """Every video whose events exist for the model of digest ``model``: the committed ones,
        then those of finished parts of an unfinished update (a later entry wins)."""
        found: dict[str, Located] = {}
        if manifest is not None:
            for row, obj in enumerate(manifest["videos"]):
                video = Video.from_json(obj)
                found[video.key.path] = Located(video, manifest["events"], row)
        for part in self._journal():
            if part.get("model") == model and (self.dir / part["file"]).is_file():
                for row, obj in enumerate(part["videos"]):
                    video = Video.from_json(obj)
                    found[video.key.path] = Located(video, part["file"], row)
        return found

    def _journal(self) -> Iterator[dict]:
        """Journal lines; a torn last line (an interrupted append) is ignored."""
        path = self.dir / JOURNAL
        if not path.is_file():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                part = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(part, dict) and {"file", "model", "videos"} <= part.keys():
                yield part

    def add_part(self, events: np.ndarray, videos: list[Video], model: str) -> None:
        """Store one encoded batch for good: the part file (atomic), then its journal line (fsync'd)."""
        name = f"{PARTS}/{uuid.uuid4().hex}.npy"
        atomic_save_npy(self.dir / name, np.ascontiguousarray(events, dtype=np.float32))
        line = json.dumps({"file": name, "model": model, "videos": [v.to_json() for v in videos]}) + "\n"
        path = self.dir / JOURNAL
        if _ends_torn(path):
            line = "\n" + line  # end a line torn by an interruption, which would swallow this one
        with open(path, "a", encoding="utf-8") as journal:
            journal.write(line)
            journal.flush()
            os.fsync(journal.fileno())

    def commit(self, manifest: dict, shape: tuple[int, int, int], fill: Callable[[np.ndarray], None]) -> None:
        """Write a new event matrix of ``shape`` (``fill`` writes its rows into a memory map), then
        ``manifest`` naming it, then delete the parts, the journal and every older matrix."""
        name = f"events-{uuid.uuid4().hex[:12]}.npy"

        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            fill(out)
            out.flush()
            del out

        atomic_write_with(self.dir / name, write)
        atomic_write_json(self.manifest_path, {**manifest, "format": FORMAT, "events": name}, indent=1)
        for old in self.dir.glob("events-*.npy"):
            if old.name != name:
                old.unlink()
        (self.dir / JOURNAL).unlink(missing_ok=True)
        if (self.dir / PARTS).is_dir():
            shutil.rmtree(self.dir / PARTS)

    def width(self, where: Located) -> int:
        """Embedding width D of stored events (from the file's header, not its rows)."""
        return int(np.load(self.dir / where.file, mmap_mode="r").shape[-1])

    def gather(self, located: list[Located], out: np.ndarray) -> None:
        """Copy the events of ``located`` (from the committed matrix and parts) into rows of ``out``."""
        by_file: dict[str, list[tuple[int, int]]] = {}
        for dst, where in enumerate(located):
            by_file.setdefault(where.file, []).append((dst, where.row))
        for file, pairs in by_file.items():
            source = np.load(self.dir / file, mmap_mode="r")
            dst, src = (np.array(x, dtype=np.int64) for x in zip(*pairs))
            out[dst] = source[src]
