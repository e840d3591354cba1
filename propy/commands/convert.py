"""``python -m propy convert``: convert a public dataset's annotations to the canonical jsonl.

The work is done in ``propy.data.convert``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from propy.data.annotations import (
    Record,
    read_text,
    write_annotations,
)
from propy.data.convert import (
    MISSING_TS_POLICIES,
    SOURCES,
    Report,
    convert_activitynet,
    convert_charades,
    convert_qvhighlights,
    convert_tvr,
    read_charades_durations,
)
from propy.data.video import probe_duration
from propy.errors import DataError, PropyError
from propy.runtime.files import prepare_output


def _charades_lookup(args: argparse.Namespace) -> Callable[[str], float | None]:
    if args.durations:
        durations: dict[str, float] = {}
        for path in args.durations:
            durations.update(read_charades_durations(path))
        return durations.get
    if args.videos:
        return functools.cache(lambda vid: probe_duration(args.videos / f"{vid}.mp4"))
    raise PropyError("convert charades needs --durations CSV or --videos DIR (Charades-STA has no durations)")


def _check_options(args: argparse.Namespace) -> None:
    if args.source != "charades" and (args.durations or args.videos):
        raise PropyError("--durations and --videos only apply to charades")
    if args.source not in ("tvr", "qvhighlights") and args.missing_ts is not None:
        raise PropyError("--missing-ts only applies to tvr and qvhighlights")


def _converter(args: argparse.Namespace) -> Callable[[str], tuple[list[Record], Report]]:
    """The selected converter with its source-specific options bound."""
    if args.source == "charades":
        return functools.partial(convert_charades, duration_of=_charades_lookup(args))
    if args.source == "activitynet":
        return convert_activitynet
    convert = convert_tvr if args.source == "tvr" else convert_qvhighlights
    return functools.partial(convert, missing_ts=args.missing_ts or "skip")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=SOURCES, metavar="SOURCE", help=f"one of {', '.join(SOURCES)}")
    parser.add_argument("input", type=Path, metavar="IN", help="the dataset's release annotation file")
    parser.add_argument("output", type=Path, metavar="OUT", help="canonical jsonl to write")
    parser.add_argument(
        "--missing-ts",
        choices=MISSING_TS_POLICIES,
        help="tvr/qvhighlights: a query without a moment (test splits) is skipped (default) or gets the whole video",
    )
    durations = parser.add_mutually_exclusive_group()
    durations.add_argument(
        "--durations",
        type=Path,
        action="append",
        metavar="CSV",
        help="charades: Charades csv with 'id' and 'length' columns (repeat for train and test)",
    )
    durations.add_argument(
        "--videos",
        type=Path,
        metavar="DIR",
        help="charades: read durations from DIR/<video_id>.mp4 instead",
    )


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    prepare_output(args.output)  # a folder as OUT, or an unwritable place, fails before the conversion
    convert = _converter(args)
    text = read_text(args.input)
    try:
        records, report = convert(text)
    except DataError as exc:
        raise DataError(f"{args.input}: {exc}") from None
    write_annotations(args.output, records)
    print(f"convert {args.source}: {args.input} -> {args.output}")
    for line in report.lines():
        print(f"  {line}")
    return 0
