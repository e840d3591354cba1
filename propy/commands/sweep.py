"""``python -m propy sweep``: train a grid of settings once each and score them on the validation split.

The work is done in ``propy.train.sweep``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.config import (
    add_layout_args,
    layout_from,
)
from propy.train.sweep import sweep


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    add_layout_args(parser)
    parser.add_argument(
        "--out", required=True, type=Path, help="sweep JSON to write, e.g. metrics/synthetic/sweep.json"
    )
    parser.add_argument(
        "--models",
        required=True,
        type=Path,
        help="folder of the combinations' checkpoints, e.g. models/synthetic/sweep",
    )


def run(args: argparse.Namespace) -> int:
    result = sweep(args.params, layout_from(args), args.out, args.models)
    print(f"sweep: best on validation {result['best']} -> {args.out}")
    return 0
