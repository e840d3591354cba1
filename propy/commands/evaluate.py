"""``python -m propy evaluate``: evaluate a trained variant or a zero-shot baseline.

The work is done in ``propy.evaluation.evaluate``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from propy.config import (
    SPLITS,
    TRAINED_KINDS,
    add_layout_args,
    layout_from,
    load_params,
)
from propy.errors import ConfigError
from propy.evaluation.evaluate import evaluate, summary_lines
from propy.model.checkpoint import pick_device
from propy.runtime.files import (
    prepare_output,
)
from propy.stage_reads import guard


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", required=True, help="variant of params.yaml to evaluate")
    parser.add_argument("--split", default="test", choices=SPLITS, help="annotation split (default: test)")
    add_layout_args(parser, features=True)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="trained weights, e.g. models/synthetic/full-s42/best.pt (trained variants only)",
    )
    parser.add_argument(
        "--metrics", required=True, type=Path, help="metrics JSON, e.g. metrics/synthetic/runs/full-s42.json"
    )
    parser.add_argument(
        "--results", required=True, type=Path, help="per-query results folder, e.g. results/synthetic/runs/full-s42"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    params = guard(load_params(args.params, args.variant), "evaluate")
    trained = params.model.kind in TRAINED_KINDS
    if trained and args.checkpoint is None:
        raise ConfigError(
            f"variant {args.variant!r} (model.kind {params.model.kind}) needs --checkpoint with its trained weights"
        )
    if not trained and args.checkpoint is not None:
        raise ConfigError(
            f"variant {args.variant!r} is a zero-shot baseline (model.kind {params.model.kind}): it "
            "has no trained weights, so --checkpoint does not apply; drop it"
        )
    device = pick_device(args.device)
    prepare_output(args.metrics)
    prepare_output(args.results, folder=True)
    started = time.perf_counter()
    metrics = evaluate(params, layout_from(args), args.split, device, args.checkpoint, args.metrics, args.results)
    lines = summary_lines(params, f"{args.variant} on {args.split}", metrics)
    lines.append(f"{time.perf_counter() - started:.1f} s")
    print("\n".join(lines))
    return 0
