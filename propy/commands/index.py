"""``python -m propy index VIDEO_DIR --out INDEX_DIR``: encode a folder of videos for ``propy search``.

A re-run encodes only new or changed files and drops deleted ones; an interrupted run resumes
where it stopped (see ``propy.search.engine.add_videos`` and ``propy.search.store``).
"""

from __future__ import annotations

import argparse
import sys

from propy.search.engine import add_videos

LISTED = 20  # skipped files printed; all of them are in the manifest


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video_dir", metavar="VIDEO_DIR", help="folder walked recursively for videos")
    parser.add_argument("--out", required=True, metavar="INDEX_DIR", help="index folder (created or updated)")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", default="full", help="variant of params.yaml whose model encodes (default: full)")
    parser.add_argument(
        "--checkpoint", help="trained weights, e.g. models/synthetic/full-s42/best.pt (not for the zero-shot baselines)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    result = add_videos(args.video_dir, args.out, args.params, args.variant, args.checkpoint, args.device)
    print(
        f"index {result.index}: {result.videos} videos ({len(result.encoded)} encoded now, "
        f"{result.unchanged} unchanged, {result.resumed} from an interrupted run, {len(result.removed)} removed, "
        f"{len(result.skipped)} skipped) in {result.seconds:.1f} s"
    )
    if result.skipped:
        shown = sorted(result.skipped.items())[:LISTED]
        more = len(result.skipped) - len(shown)
        print(
            "skipped (not indexed; listed in index.json):\n"
            + "\n".join(f"  {p}: {why}" for p, why in shown)
            + (f"\n  ... and {more} more" if more else ""),
            file=sys.stderr,
        )
    return 0
