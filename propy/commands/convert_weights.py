"""``python -m propy convert-weights``: convert OpenAI's TorchScript CLIP archive to an open_clip state dict.

The work is done in ``propy.model.weights``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.model.weights import QUICK_GELU, convert


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="OpenAI's TorchScript archive, e.g. ViT-B-32.pt as published")
    parser.add_argument(
        "out",
        type=Path,
        help="the open_clip state dict to write, e.g. models/ViT-B-32-openclip.pt (git ignores models/; a file "
        "in weights/ would re-run every stage that loads CLIP)",
    )


def run(args: argparse.Namespace) -> int:
    count, activation = convert(args.source, args.out)
    print(
        f"convert-weights: {args.source} -> {args.out} ({count} tensors, activation {activation}; "
        f"load it with a {'-quickgelu model, e.g. ViT-B-32-quickgelu' if activation == QUICK_GELU else 'GELU model'})"
    )
    return 0
