"""A public dataset's release annotations -> canonical jsonl.

Each ``convert_<source>`` is a pure function from the release file's text to
``(records, report)``. Release files carry a few bad items (empty sentences,
moments past the video's end), so an item that cannot become a valid
:class:`Record` is skipped with a reason and its location rather than
stopping the conversion; the report counts those, and the records changed on
the way (clamped moments, merged windows). A file that yields no record at
all is an error.

Moments, for every source: ``start > end`` is skipped (swapping would guess
which number is wrong); otherwise both ends are clamped into
``[0, duration]`` and counted, and a moment left empty by clamping (it lay
wholly outside the video) is skipped.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from propy.data.annotations import (
    FieldError,
    Record,
    RecordIndex,
    as_duration,
    as_span,
    as_text,
    read_text,
)
from propy.errors import DataError

CLAMPED = "moment clamped into [0, duration]"
WHOLE_VIDEO = "no moment given: whole video [0, duration] used"
MERGED = "several relevant windows: one span from the earliest start to the latest end"
START_AFTER_END = "start after end"
SOURCES = ("tvr", "activitynet", "charades", "qvhighlights")
MISSING_TS_POLICIES = ("skip", "whole")


@dataclass(frozen=True)
class Report:
    """What a conversion kept, changed and dropped."""

    videos: int
    queries: int
    skips: tuple[tuple[str, str], ...]  # (where, reason), in input order
    adjusted: Counter[str]  # kept records changed on the way: note -> count

    @property
    def skipped(self) -> Counter[str]:
        """Skipped items per reason."""
        return Counter(reason for _, reason in self.skips)

    @property
    def clamped(self) -> int:
        return self.adjusted[CLAMPED]

    def lines(self, examples: int = 3) -> list[str]:
        """Human-readable counts, with the first few locations of each skip reason."""
        out = [f"{self.queries} queries of {self.videos} videos", f"{CLAMPED}: {self.clamped}"]
        out += [f"{note}: {n}" for note, n in self.adjusted.items() if note != CLAMPED]
        for reason, n in self.skipped.most_common():
            where = [w for w, r in self.skips if r == reason][:examples]
            more = ", ..." if n > examples else ""
            out.append(f"skipped {n}: {reason} ({', '.join(where)}{more})")
        return out


class _Collector:
    """Accumulates the records of one conversion and the reasons items were skipped."""

    def __init__(self, missing_ts: str = "skip") -> None:
        if missing_ts not in MISSING_TS_POLICIES:
            raise ValueError(f"missing_ts must be one of {MISSING_TS_POLICIES}, got {missing_ts!r}")
        self.missing_ts = missing_ts
        self.records: list[Record] = []
        self.skips: list[tuple[str, str]] = []
        self.adjusted: Counter[str] = Counter()
        self.without_moment = 0  # items skipped for a missing moment (a test split: --missing-ts whole)
        self._index = RecordIndex()

    def skip(self, where: str, reason: str) -> None:
        self.skips.append((where, reason))

    @contextlib.contextmanager
    def item(self, where: str) -> Iterator[Callable[..., None]]:
        """Scope of one source item: a DataError inside skips it with its reason.

        Reasons must not contain the offending value, so that they can be counted:
        a FieldError's ``reason``, or a plain DataError's fixed message.

        Yields ``add(vid_name, desc_id, desc, duration, ts, ts_field="ts", notes=())``.
        """
        try:
            yield functools.partial(self._add, where)
        except DataError as exc:
            self.skip(where, getattr(exc, "reason", str(exc)))

    def _add(
        self,
        where: str,
        vid_name: object,
        desc_id: object,
        desc: object,
        duration: object,
        ts: object,
        ts_field: str = "ts",
        notes: tuple[str, ...] = (),
    ) -> None:
        duration = as_duration(duration)
        if ts is None:
            if self.missing_ts != "whole":
                self.without_moment += 1
                raise FieldError(ts_field, "missing")
            span, clamped, notes = (0.0, duration), False, notes + (WHOLE_VIDEO,)
        else:
            span, clamped = _fit(as_span(ts_field, ts), duration, ts_field)
        desc = desc.strip() if isinstance(desc, str) else desc
        record = Record(vid_name, desc_id, desc, duration, span)  # type: ignore[arg-type]
        self._index.add(record, where)
        self.records.append(record)
        self.adjusted.update(notes + ((CLAMPED,) if clamped else ()))

    def finish(self) -> tuple[list[Record], Report]:
        report = Report(
            videos=len({r.vid_name for r in self.records}),
            queries=len(self.records),
            skips=tuple(self.skips),
            adjusted=self.adjusted,
        )
        if not self.records and not self.skips:
            raise DataError("no record could be converted: the input has no items")
        if not self.records:
            reasons = "; ".join(f"{n}x {r}" for r, n in report.skipped.most_common(3))
            hint = (
                "; a test split has no moments: add --missing-ts whole to give each query the whole video"
                if self.without_moment
                else ""
            )
            raise DataError(f"no record could be converted, all {len(self.skips)} items skipped ({reasons}){hint}")
        return self.records, report


def _fit(span: tuple[float, float], duration: float, field: str) -> tuple[tuple[float, float], bool]:
    """The moment clamped into the video, and whether clamping changed it."""
    start, end = span
    if start > end:
        raise FieldError(field, START_AFTER_END, f": [{start:g}, {end:g}]")
    fitted = (min(max(start, 0.0), duration), min(max(end, 0.0), duration))
    if fitted != span and fitted[0] >= fitted[1]:
        raise FieldError(field, "moment lies outside the video [0, duration]")
    return fitted, fitted != span


def _number(field: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FieldError(field, "expected a number", f", got {text!r}") from None


def _json_lines(text: str, out: _Collector) -> Iterator[tuple[str, object]]:
    """``(where, decoded line)`` for each non-blank line; undecodable lines are skipped."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            out.skip(f"line {lineno}", "invalid JSON")
            continue
        yield f"line {lineno}", value


def _object(value: object, required: Iterable[str]) -> dict:
    """``value`` as a JSON object that has the ``required`` fields."""
    if not isinstance(value, dict):
        raise DataError("not a JSON object")
    for name in required:
        if name not in value:
            raise FieldError(name, "missing")
    return value


def convert_tvr(text: str, missing_ts: str = "skip") -> tuple[list[Record], Report]:
    """TVR release jsonl: already canonical apart from extra fields (``type``) and int ids.

    A query without ``ts``: ``missing_ts="whole"`` uses the whole video, ``"skip"`` drops it.
    The test-public release names no video for its queries (they are scored on TVR's server):
    it is refused with that reason, as PRVR needs each query's video.
    """
    out = _Collector(missing_ts)
    items = hidden = 0
    for where, value in _json_lines(text, out):
        items += 1
        hidden += isinstance(value, dict) and "vid_name" not in value and {"desc_id", "desc"} <= set(value)
        with out.item(where) as add:
            obj = _object(value, ("vid_name", "desc_id", "desc", "duration"))
            add(obj["vid_name"], obj["desc_id"], obj["desc"], obj["duration"], obj.get("ts"))
    if items and hidden == items:
        raise DataError(
            f"none of the {items} queries names its video (no vid_name): this is TVR's test-public release, "
            "whose videos are hidden for the official server, so it cannot be a test split here; "
            'convert tvr_val_release.jsonl as the test split instead (README, "Run on a real dataset")'
        )
    return out.finish()


def _hull(windows: object) -> tuple[tuple[float, float], bool]:
    """The span from the earliest start to the latest end, and whether there were several windows."""
    if not isinstance(windows, list) or not windows:
        raise FieldError("relevant_windows", "expected a non-empty list of [start, end]", f", got {windows!r}")
    spans = [as_span("relevant_windows", w) for w in windows]
    if any(start > end for start, end in spans):
        raise FieldError("relevant_windows", START_AFTER_END, f", got {windows!r}")
    return (min(s for s, _ in spans), max(e for _, e in spans)), len(spans) > 1


def convert_qvhighlights(text: str, missing_ts: str = "skip") -> tuple[list[Record], Report]:
    """QVHighlights jsonl (``qid, query, vid, duration, relevant_windows``), one record per query.

    PRVR wants one moment per query; a query with several relevant windows gets
    the single span covering all of them (earliest start to latest end), so the
    moment contains every relevant second; these are counted as merged.
    The test split has no windows: see ``missing_ts`` in :func:`convert_tvr`.
    """
    out = _Collector(missing_ts)
    for where, value in _json_lines(text, out):
        with out.item(where) as add:
            obj = _object(value, ("qid", "query", "vid", "duration"))
            span, notes = None, ()
            if obj.get("relevant_windows") is not None:
                span, merged = _hull(obj["relevant_windows"])
                notes = (MERGED,) if merged else ()
            add(obj["vid"], obj["qid"], obj["query"], obj["duration"], span, ts_field="relevant_windows", notes=notes)
    return out.finish()


def convert_activitynet(text: str) -> tuple[list[Record], Report]:
    """ActivityNet Captions json ``{video_id: {duration, timestamps, sentences}}``.

    One record per sentence, ``desc_id = "<video_id>#<i>"`` (i from 0, so ids
    are stable across runs). A video whose timestamps and sentences differ in
    number is skipped whole: which sentence goes with which moment is unknown.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object keyed by video id, got {type(data).__name__}")
    out = _Collector()
    for vid, value in data.items():
        with out.item(f"video {vid}"):
            entry = _object(value, ("duration", "timestamps", "sentences"))
            stamps, sentences = entry["timestamps"], entry["sentences"]
            if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
                raise FieldError("timestamps", "expected a list as long as 'sentences'")
            for i, (ts, sentence) in enumerate(zip(stamps, sentences)):
                with out.item(f"video {vid} sentence {i}") as add:
                    add(vid, f"{vid}#{i}", sentence, entry["duration"], ts, ts_field="timestamps")
    return out.finish()


def convert_charades(text: str, duration_of: Callable[[str], float | None]) -> tuple[list[Record], Report]:
    """Charades-STA lines ``video_id start end##sentence``.

    The release has no durations: ``duration_of(video_id)`` supplies them
    (None = unknown, the line is skipped). ``desc_id = "<video_id>#<line number>"``
    (1-based, blank lines counted) so ids stay stable.
    """
    out = _Collector()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        with out.item(f"line {lineno}") as add:
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise DataError("malformed line: expected 'video_id start end##sentence'")
            vid, start, end = parts
            duration = duration_of(vid)
            if duration is None:
                raise DataError("no duration known for the video")
            add(vid, f"{vid}#{lineno}", sentence, duration, (_number("start", start), _number("end", end)))
    return out.finish()


def read_charades_durations(path: Path) -> dict[str, float]:
    """``{id: length}`` from a Charades csv (columns ``id`` and ``length``, in seconds)."""
    rows = csv.DictReader(io.StringIO(read_text(path)))
    columns = rows.fieldnames or []
    if "id" not in columns or "length" not in columns:
        raise DataError(f"{path}: expected a csv with columns 'id' and 'length', got {columns}")
    durations: dict[str, float] = {}
    for row in rows:
        try:
            durations[as_text("id", row["id"]).strip()] = as_duration(_number("length", row["length"] or ""))
        except DataError as exc:
            raise DataError(f"{path}:{rows.line_num}: {exc}") from None
    return durations
