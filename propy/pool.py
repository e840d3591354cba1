"""``python -m propy pool``: one set of numbers per variant from its runs, and every comparison with
an interval.

A trained variant is trained once per seed of ``study.seeds`` (run ``<variant>-s<seed>``); a
zero-shot baseline is one run (``<variant>``). Pooling gives, per variant, the mean and the
standard deviation over its runs of every metric, and the 95% bootstrap interval of SumR over
test queries and seeds. Every row of every ``study.ablations`` table, and every zero-shot
baseline, is compared with ``report.headline`` (``full``): the change in mean SumR with a paired
bootstrap interval (queries shared, seeds drawn per side; ``propy.metrics.bootstrap_sumr``).
A change whose interval holds 0 is reported as "no difference", never as a gain or a loss.

Outputs: ``<out-metrics>/<variant>.json`` (the per-run schema of ``evaluate``, values averaged,
plus ``sd``, ``SumR_ci``, ``runs``), ``<out-metrics>/comparisons.json`` and
``<out-results>/<variant>/breakdown.json`` (per-group recalls averaged over runs).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

import numpy as np

from propy.config import Params, load_params
from propy.errors import DataError
from propy.io import atomic_write_json, iter_jsonl, prepare_output, read_json
from propy.metrics import bootstrap_sumr

SAMPLES = 2000
LEVEL = 0.95
SPREAD = ("R1", "R5", "R10", "R100", "SumR", "MedR", "MeanR")  # metrics whose sd over runs is reported


def run_name(variant: str, seed: Optional[int]) -> str:
    return variant if seed is None else f"{variant}-s{seed}"


def runs_of(params: Params, variant: str) -> list[str]:
    """The runs that make up ``variant``: one per seed if trained, else one."""
    if variant in params.study.trained:
        return [run_name(variant, seed) for seed in params.study.seeds]
    return [run_name(variant, None)]


def _mean(values: list[Any]) -> Any:
    """Element-wise mean of equal-shaped JSON values (numbers, or mappings of them); the first
    value of anything else (strings, lists), which runs of one variant share."""
    first = values[0]
    if isinstance(first, dict):
        return {k: _mean([v[k] for v in values]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(np.mean(values))
    return first


def pool_metrics(runs: dict[str, dict]) -> dict:
    """The runs' metrics averaged; ``sd`` (over runs, ddof 1; 0 for one run) of the recalls and
    ranks; ``epoch`` per run."""
    values = list(runs.values())
    pooled = _mean([{k: v for k, v in run.items() if k != "environment"} for run in values])
    if "environment" in values[0]:  # where the runs were made (one machine in a `make study`)
        pooled["environment"] = values[0]["environment"]
    pooled["runs"] = list(runs)
    pooled["epoch"] = [v.get("epoch") for v in values]
    pooled["sd"] = {k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0
                    for k in SPREAD if k in values[0]}
    return pooled


def pool_breakdown(breakdowns: list[dict]) -> dict:
    """Per-group recalls averaged over runs (the groups and their sizes are the same in every run)."""
    out = {}
    for by in breakdowns[0]:
        groups = [b[by] for b in breakdowns]
        out[by] = [_mean(list(rows)) for rows in zip(*groups)]
    return out


def load_ranks(results: Path, run: str, order: Optional[list[str]] = None) -> tuple[list[str], np.ndarray]:
    """(desc_ids, ranks) of one run's ``rankings.jsonl``, in ``order`` when given."""
    path = results / run / "rankings.jsonl"
    rows = {obj["desc_id"]: int(obj["rank"]) for _, obj in iter_jsonl(path, f"missing (written by evaluate of {run})")}
    if order is None:
        return list(rows), np.array(list(rows.values()))
    if set(rows) != set(order):
        raise DataError(f"{path}: not the same test queries as the other runs ({len(rows)} vs {len(order)})")
    return order, np.array([rows[d] for d in order])


def verdict(low: float, high: float) -> str:
    return "gain" if low > 0 else "loss" if high < 0 else "no difference"


def compare(ranks: dict[str, np.ndarray], params: Params, variant: str, reference: str) -> dict:
    """Change in mean SumR of ``variant`` from ``reference`` with its paired bootstrap interval."""
    ks = params.eval.ks
    sumr = lambda r: float(np.mean([100.0 * sum((run <= k).mean() for k in ks) for run in r]))  # noqa: E731
    low, high = bootstrap_sumr(ranks[variant], ks, reference=ranks[reference], samples=SAMPLES, level=LEVEL)
    return {"variant": variant, "reference": reference, "delta_SumR": sumr(ranks[variant]) - sumr(ranks[reference]),
            "ci": [low, high], "verdict": verdict(low, high)}


def pool(params: Params, run_metrics: Path, run_results: Path, out_metrics: Path, out_results: Path) -> dict:
    """Pool every variant of the study; returns comparisons.json's content."""
    variants = [*params.study.trained, *params.study.zero_shot]
    ranks: dict[str, np.ndarray] = {}
    order: Optional[list[str]] = None
    for variant in variants:
        runs = runs_of(params, variant)
        metrics = {run: read_json(run_metrics / f"{run}.json", f"missing (written by evaluate of {run})")
                   for run in runs}
        per_run = []
        for run in runs:
            order, r = load_ranks(run_results, run, order)
            per_run.append(r)
        ranks[variant] = np.stack(per_run)
        pooled = pool_metrics(metrics)
        pooled["SumR_ci"] = list(bootstrap_sumr(ranks[variant], params.eval.ks, samples=SAMPLES, level=LEVEL))
        breakdowns = [read_json(run_results / run / "breakdown.json", f"missing (written by evaluate of {run})")
                      for run in runs]
        atomic_write_json(out_results / variant / "breakdown.json", pool_breakdown(breakdowns))
        atomic_write_json(out_metrics / f"{variant}.json", pooled)
    headline = params.report.headline
    tables = {name: [compare(ranks, params, v, headline) for v in rows if v != headline]
              for name, rows in params.study.ablations.items()}
    tables["zero_shot"] = [compare(ranks, params, v, headline) for v in params.study.zero_shot]
    comparisons = {"reference": headline, "seeds": params.study.seeds, "level": LEVEL, "samples": SAMPLES,
                   "num_queries": len(order or []), "tables": tables}
    atomic_write_json(out_metrics / "comparisons.json", comparisons)
    return comparisons


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--runs", required=True, type=Path, help="per-run metrics folder, e.g. metrics/synthetic/runs")
    parser.add_argument("--run-results", required=True, type=Path,
                        help="per-run results folder, e.g. results/synthetic/runs")
    parser.add_argument("--out", required=True, type=Path, help="pooled metrics folder, e.g. metrics/synthetic/pooled")
    parser.add_argument("--out-results", required=True, type=Path,
                        help="pooled results folder, e.g. results/synthetic/pooled")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    for folder in (args.out, args.out_results):
        prepare_output(folder, folder=True)
    comparisons = pool(params, args.runs, args.run_results, args.out, args.out_results)
    print(f"pool: {len(params.study.trained)} trained variants x {len(params.study.seeds)} seeds, "
          f"{len(params.study.zero_shot)} zero-shot; {comparisons['num_queries']} test queries")
    for name, rows in comparisons["tables"].items():
        for row in rows:
            low, high = row["ci"]
            print(f"  {name:<12} {row['variant']:<18} ΔSumR {row['delta_SumR']:+6.1f} "
                  f"[{low:+.1f}, {high:+.1f}] {row['verdict']}")
    return 0
