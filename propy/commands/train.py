"""``python -m propy train``: train ProPy (one variant), then (``--metrics``) evaluate it on the test split.

The work is done in ``propy.train.trainer``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from propy.config import (
    add_layout_args,
    layout_from,
    read_params,
    resolve,
    shadowed_notes,
)
from propy.errors import ConfigError
from propy.evaluation.evaluate import evaluate, summary_lines
from propy.model.checkpoint import pick_device
from propy.runtime.files import prepare_output
from propy.stage_reads import guard
from propy.train.trainer import check_processes, launch, processes, train_job


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", required=True, help="variant of params.yaml to train")
    add_layout_args(parser, features=True)
    parser.add_argument(
        "--seed", required=True, type=int, help="training seed (the pipeline trains each of study.seeds)"
    )
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder, e.g. models/synthetic/full-s42")
    parser.add_argument(
        "--log", required=True, type=Path, help="per-epoch JSON log, e.g. logs/train/synthetic/full-s42.json"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue from <out>/last.pt; an error if it is missing or from other params/inputs "
        "(default without --resume/--fresh: continue it when it matches, else start fresh)",
    )
    mode.add_argument("--fresh", action="store_true", help="ignore <out>/last.pt and start from scratch")
    parser.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from the trained tensors of CKPT (a best.pt or an imported reference "
        "checkpoint; its model and CLIP settings must equal the variant's)",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        help="then evaluate <out>/best.pt on the test split, in this process (no second start-up): "
        "its metrics JSON, e.g. metrics/synthetic/runs/full-s42.json",
    )
    parser.add_argument(
        "--results", type=Path, help="with --metrics: per-query results folder, e.g. results/synthetic/runs/full-s42"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="DDP processes to start on this machine (default: one per visible GPU on CUDA, "
        "1 on CPU; ignored under torchrun, which starts them itself)",
    )


def run(args: argparse.Namespace) -> int:
    raw = read_params(args.params)
    params = resolve(raw, args.variant, str(args.params))
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 speaks and evaluates
    if main_rank:
        for note in shadowed_notes(raw, params):  # `dvc exp run -S train.epochs=5` does nothing here: say so
            print(f"note: {args.params}: {note}", file=sys.stderr)
    params = guard(params, "train")  # from here on, only what its params file (propy.stage_reads) holds
    if (args.metrics is None) != (args.results is None):
        raise ConfigError("--metrics and --results go together: both or neither")
    if args.metrics is not None and main_rank:  # unwritable outputs fail now, not after the training
        prepare_output(args.metrics)
        prepare_output(args.results, folder=True)
    resume = "require" if args.resume else "never" if args.fresh else "auto"
    layout = layout_from(args)
    job = (params, layout, args.seed, args.out, args.log, args.device, resume, args.init_from)
    nproc = 1 if "WORLD_SIZE" in os.environ else processes(args.nproc, args.device)
    check_processes(params, nproc)
    if nproc == 1:
        train_job(*job)
    else:
        launch(nproc, train_job, *job)
    if args.metrics is not None and main_rank:
        started = time.perf_counter()
        device = pick_device(args.device)
        checkpoint = args.out / "best.pt"
        metrics = evaluate(params, layout, "test", device, checkpoint, args.metrics, args.results)
        lines = summary_lines(params, f"{args.variant} (seed {args.seed}) on test", metrics)
        print("\n".join([*lines, f"evaluated in {time.perf_counter() - started:.1f} s"]))
    return 0
