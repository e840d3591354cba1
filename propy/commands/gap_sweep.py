"""``python -m propy gap-sweep``: the small CLIP at each caption gap, zero-shot and trained, on validation.

The work is done in ``propy.train.gap_sweep``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.config import add_layout_args, layout_from
from propy.train.gap_sweep import gap_sweep


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    add_layout_args(parser)
    parser.add_argument(
        "--out", required=True, type=Path, help="sweep JSON to write, e.g. metrics/synthetic/gap_sweep.json"
    )
    parser.add_argument(
        "--models",
        required=True,
        type=Path,
        help="folder of each level's CLIP and model, e.g. models/synthetic/gap_sweep",
    )


def run(args: argparse.Namespace) -> int:
    result = gap_sweep(args.params, layout_from(args), args.out, args.models)
    print(f"gap-sweep: the rule chooses caption gap {result['chosen']} -> {args.out}")
    return 0
