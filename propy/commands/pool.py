"""``python -m propy pool``: pool each variant's runs (one per seed) and compare variants with intervals.

The work is done in ``propy.evaluation.seed_pooling``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.config import load_params
from propy.evaluation.seed_pooling import pool
from propy.runtime.files import prepare_output, read_json
from propy.stage_reads import guard


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--runs", required=True, type=Path, help="per-run metrics folder, e.g. metrics/synthetic/runs")
    parser.add_argument(
        "--run-results", required=True, type=Path, help="per-run results folder, e.g. results/synthetic/runs"
    )
    parser.add_argument("--out", required=True, type=Path, help="pooled metrics folder, e.g. metrics/synthetic/pooled")
    parser.add_argument(
        "--out-results", required=True, type=Path, help="pooled results folder, e.g. results/synthetic/pooled"
    )


def run(args: argparse.Namespace) -> int:
    params = guard(load_params(args.params), "pool")
    for folder in (args.out, args.out_results):
        prepare_output(folder, folder=True)
    comparisons = pool(params, args.runs, args.run_results, args.out, args.out_results)
    print(
        f"pool: {len(params.study.trained)} trained variants x {len(params.study.seeds)} seeds, "
        f"{len(params.study.zero_shot)} zero-shot; {comparisons['num_queries']} test queries"
    )
    for name, rows in comparisons["tables"].items():
        for row in rows:
            low, high = row["ci"]
            print(
                f"  {name:<12} {row['variant']:<18} ΔSumR {row['delta_SumR']:+6.1f} "
                f"[{low:+.1f}, {high:+.1f}] MDE {row['mde']:.1f} {row['verdict']}"
            )
    claims = read_json(args.out / "claims.json", "missing (written just now by pool)")
    print(f"claims ({claims['tests_run']} tests, Holm at {claims['alpha']:g}):")
    for c in claims["claims"]:
        if c["verdict"] == "skipped":
            print(f"  {c['name']:<18} skipped: {c['note']}")
        else:
            print(
                f"  {c['name']:<18} Δ {c['delta']:+6.1f} [{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}] MDE {c['mde']:.1f} "
                f"p_holm {c['p_holm']:.3f} {c['verdict']}"
            )
    return 0
