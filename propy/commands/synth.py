"""``python -m propy synth``: generate the synthetic PRVR benchmark (mp4 + annotations).

The work is done in ``propy.data.synth``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from propy.config import load_params
from propy.data.synth import generate


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (block 'synth')")
    parser.add_argument("--out", type=Path, required=True, help="output directory, e.g. data/synthetic")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    out = args.out
    started = time.perf_counter()
    stats = generate(params.synth, out)
    print(f"synth: {out} in {time.perf_counter() - started:.1f}s (codec {stats['codec']})")
    if stats["codec"] != "libx264":
        print(f"  note: libx264 is not available in this PyAV build; videos use {stats['codec']}, not H.264")
    for split, s in stats["splits"].items():
        print(
            f"  {split}: {s['videos']} videos, {s['queries']} queries {s['query_kinds']} "
            f"(left out: {s['dropped'] or 'none'}), moment/video ratio "
            f"median {s['ratio']['median']:.2f}, {100 * s['ratio']['below_0.2']:.0f}% below 0.2"
        )
    return 0
