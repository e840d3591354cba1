"""``propy extract``'s work: decode every video of a split once into the frame cache
(:mod:`propy.data.cache`, which holds the layout and the reading side), resuming.

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

Sharing. A video that another split of the same cache already holds, made from the same source file
with the same settings and still whole, is hard-linked from there instead of decoded again (ActivityNet
Captions' val_1 and val_2 annotate the same videos); where links are refused it is copied.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from propy.data.cache import MANIFEST
from propy.data.frames import frames_problem, suffix, write_frames
from propy.data.video import read_video
from propy.errors import DataError
from propy.runtime.files import atomic_write_json, atomic_write_text, file_digest, prepare_output
from propy.runtime.hold import hold
from propy.runtime.progress import progress as reporting

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
    linked: list[str] = field(default_factory=list)  # found cached by another split with the same settings
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


def _from_other_split(
    vid: str, key: list | None, others: dict[Path, dict[str, dict]], size: int
) -> tuple[Path, dict] | None:
    """A whole cached file of ``vid`` made from the same source with the same settings by another split of
    this cache (ActivityNet Captions' val_1 and val_2 share their videos): its folder and journal entry."""
    for folder, journal in others.items():
        entry = journal.get(vid)
        if entry is not None and _reusable(entry, key, folder):
            if _cached_problem(folder / str(entry.get("file", "")), dict(entry), size) is None:
                return folder, entry
    return None


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (no second copy on disk), or a copy where links are refused."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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
    shared: tuple[Path, ...] = (),
) -> Extracted:
    """Cache every video in ``names`` under ``out_dir`` (resuming) and write the manifest.

    A video that a folder of ``shared`` (the cache's other splits) holds for the same source and settings
    is linked from there instead of decoded again. ``durations`` (seconds, per video, from the
    annotations) are compared with each video's own. Raises :class:`BadVideos` listing every missing,
    unreadable or too short video unless ``skip_bad``; the good videos are cached either way, so a re-run
    after a fix decodes only the rest.
    """
    prepare_output(out_dir, folder=True)
    durations = durations or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    journal = out_dir / JOURNAL
    previous = _read_journal(journal)
    others = {folder: _read_journal(folder / JOURNAL) for folder in shared if folder != out_dir}
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
                found = _from_other_split(vid, key, others, size)
                if found is not None:
                    folder, entry = found[0], dict(found[1])
                    _link(folder / entry["file"], out_dir / entry["file"])
                    result.linked.append(vid)
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
                    result.decoded.append(vid)
                stale = previous.get(vid, {}).get("file")
                if isinstance(stale, str) and stale != entry["file"]:  # the other format's file: no longer used
                    (out_dir / stale).unlink(missing_ok=True)
                log.write(json.dumps({"vid_name": vid, **entry}) + "\n")
                log.flush()
                if found is None:
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
