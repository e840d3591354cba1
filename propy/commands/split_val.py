"""``python -m propy split-val``: split a canonical train.jsonl into train and val by video (seeded).

The work is done in ``propy.data.split``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.data.annotations import group_by_video, load_annotations, write_annotations
from propy.data.split import split_videos
from propy.errors import ConfigError, DataError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        type=Path,
        help="canonical annotations of the full training set (`propy convert` output), e.g. data/tvr/tvr_train.jsonl",
    )
    parser.add_argument("--videos", type=int, required=True, help="number of videos to hold out for validation")
    parser.add_argument("--seed", type=int, default=0, help="which videos are held out (default 0)")
    parser.add_argument("--out-train", type=Path, required=True, help="e.g. data/tvr/annotations/train.jsonl")
    parser.add_argument("--out-val", type=Path, required=True, help="e.g. data/tvr/annotations/val.jsonl")


def run(args: argparse.Namespace) -> int:
    if args.source.resolve() in (args.out_train.resolve(), args.out_val.resolve()):
        raise ConfigError(
            f"{args.source}: the source would be overwritten (a second run would split it again); "
            f"keep the full training file apart, e.g. data/<dataset>/<dataset>_train.jsonl"
        )
    records = load_annotations(args.source)
    videos = group_by_video(records)
    if not 0 < args.videos < len(videos):
        raise DataError(
            f"--videos: expected 1 to {len(videos) - 1} (the file has {len(videos)} videos), got {args.videos}"
        )
    held = split_videos(list(videos), args.videos, args.seed)
    val = [r for r in records if r.vid_name in held]
    train = [r for r in records if r.vid_name not in held]
    write_annotations(args.out_train, train)
    write_annotations(args.out_val, val)
    print(
        f"split-val {args.source} (seed {args.seed}): {len(videos) - len(held)} videos / {len(train)} queries "
        f"-> {args.out_train}, {len(held)} videos / {len(val)} queries -> {args.out_val}"
    )
    return 0
