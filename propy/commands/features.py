"""``python -m propy features``: frozen CLIP embeddings of every cached frame, once per dataset (MS-SL's input)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from propy.config import SPLITS, add_layout_args, layout_from, load_params
from propy.stage_reads import guard


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (blocks 'clip', 'datasets')")
    add_layout_args(parser)
    parser.add_argument("--out", required=True, type=Path, help="the embeddings folder to write, e.g. data/features")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all", help="which split (default all)")
    parser.add_argument("--batch-frames", type=int, default=256, help="frames per CLIP forward (default 256)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    from propy.data.features import compute
    from propy.model.backbone import load_clip
    from propy.model.checkpoint import pick_device
    from propy.runtime.files import prepare_output

    params = guard(load_params(args.params), "features")
    prepare_output(args.out, folder=True)
    started = time.perf_counter()
    splits = SPLITS if args.split == "all" else (args.split,)
    done = compute(
        load_clip(params.clip),
        params.clip,
        layout_from(args),
        args.out,
        max(1, args.batch_frames),
        pick_device(args.device),
        splits,
    )
    print(
        ", ".join(
            f"features {split}: {n} frames embedded" if n else f"features {split}: up to date"
            for split, n in done.items()
        )
        + f" -> {args.out} in {time.perf_counter() - started:.1f} s"
    )
    return 0
