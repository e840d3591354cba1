"""Canonical PRVR annotations: one JSON object per line, one file per split.

Every line is ``{"vid_name", "desc_id", "desc", "duration", "ts"}`` (seconds).
Everything downstream trusts these files, so the loader checks every line and
reports the first problem with file, line number and field, and the converters
build the same :class:`Record` (its constructor validates) before writing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from propy.errors import DataError
from propy.runtime.files import atomic_write_text

FIELDS = ("vid_name", "desc_id", "desc", "duration", "ts")
ZERO_LENGTH = "zero-length moment (start = end): it can never be localised"


class FieldError(DataError):
    """One field of one record is wrong.

    ``reason`` names the field and the problem without the offending value, so
    converters can count skipped items by reason.
    """

    def __init__(self, field: str, problem: str, detail: str = "") -> None:
        self.field = field
        self.reason = f"field '{field}': {problem}"
        super().__init__(self.reason + detail)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_text(field: str, value: object) -> str:
    """``value`` if it is a string with some non-space content."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, "expected a non-empty string", f", got {value!r}")
    return value


def as_desc_id(value: object) -> str:
    """A query id as text; integer ids (TVR and QVHighlights releases use them) become strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise FieldError("desc_id", "expected a non-empty string or an integer", f", got {value!r}")
    return value


def as_duration(value: object) -> float:
    """A video length in seconds: a finite number > 0."""
    if not _is_number(value) or value <= 0:
        raise FieldError("duration", "expected a number > 0", f", got {value!r}")
    return float(value)


def as_span(field: str, value: object) -> tuple[float, float]:
    """A ``[start, end]`` pair of finite numbers; the order and range are not checked here."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(map(_is_number, value)):
        raise FieldError(field, "expected a list of two numbers [start, end]", f", got {value!r}")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class Record:
    """One query and the moment of its video that it describes.

    The constructor validates and normalises: ``desc_id`` ints become strings,
    ``duration`` and ``ts`` become floats, and ``0 <= start < end <= duration`` (a moment of
    length 0 overlaps no proposal, so no model could ever localise it).
    """

    vid_name: str
    desc_id: str
    desc: str
    duration: float
    ts: tuple[float, float]

    def __post_init__(self) -> None:
        as_text("vid_name", self.vid_name)
        as_text("desc", self.desc)
        object.__setattr__(self, "desc_id", as_desc_id(self.desc_id))
        object.__setattr__(self, "duration", as_duration(self.duration))
        start, end = as_span("ts", self.ts)
        if not 0.0 <= start <= end <= self.duration:
            raise FieldError(
                "ts",
                "expected 0 <= start <= end <= duration",
                f", got [{start:g}, {end:g}] with duration {self.duration:g}",
            )
        if start == end:
            raise FieldError("ts", ZERO_LENGTH, f", got [{start:g}, {end:g}]")
        object.__setattr__(self, "ts", (start, end))

    @property
    def ratio(self) -> float:
        """Moment length over video length: how partial the relevance is."""
        return (self.ts[1] - self.ts[0]) / self.duration

    def to_json(self) -> dict:
        return {
            "vid_name": self.vid_name,
            "desc_id": self.desc_id,
            "desc": self.desc,
            "duration": self.duration,
            "ts": list(self.ts),
        }


def record_from_json(obj: object) -> Record:
    """A Record from one decoded line: exactly the canonical fields, each valid."""
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}")
    for name in obj:
        if name not in FIELDS:
            raise FieldError(name, f"unknown field (expected exactly {', '.join(FIELDS)})")
    for name in FIELDS:
        if name not in obj:
            raise FieldError(name, "missing")
    return Record(**obj)


class RecordIndex:
    """The rules across records of one split: unique desc_id, one duration per video.

    ``where`` labels the record being added (e.g. ``line 7``) so a conflict
    names both places.
    """

    def __init__(self) -> None:
        self._desc_at: dict[str, str] = {}
        self._video: dict[str, tuple[float, str]] = {}

    def add(self, record: Record, where: str) -> None:
        first = self._desc_at.get(record.desc_id)
        if first is not None:
            raise FieldError("desc_id", "duplicate", f": {record.desc_id!r} is also used at {first}")
        duration, first = self._video.get(record.vid_name, (record.duration, where))
        if duration != record.duration:
            raise FieldError(
                "duration",
                "differs from an earlier record of the same video",
                f": {record.duration:g} here, {duration:g} at {first} for video {record.vid_name!r}",
            )
        self._desc_at[record.desc_id] = where
        self._video.setdefault(record.vid_name, (duration, where))


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 file's content, with a clear error when it is missing or not text."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_annotations(path: str | os.PathLike) -> list[Record]:
    """All records of a canonical file; blank lines are skipped, any bad line is an error."""
    records: list[Record] = []
    index = RecordIndex()
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            record = record_from_json(obj)
            index.add(record, f"line {lineno}")
        except DataError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from None
        records.append(record)
    if not records:
        raise DataError(f"{path}: no annotation records (the file is empty)")
    return records


def write_annotations(path: str | os.PathLike, records: Iterable[Record]) -> None:
    """Write atomically, one JSON object per line; refuses what the loader would reject."""
    records = list(records)
    if not records:
        raise DataError(f"{path}: refusing to write an annotation file with no records")
    index = RecordIndex()
    for i, record in enumerate(records, start=1):
        try:
            index.add(record, f"record {i}")
        except DataError as exc:
            raise DataError(f"{path}: record {i}: {exc}") from None
    lines = (json.dumps(r.to_json(), ensure_ascii=False) for r in records)
    atomic_write_text(path, "\n".join(lines) + "\n")


def group_by_video(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records per video, videos in order of first appearance (batches are per video)."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.vid_name, []).append(record)
    return groups
