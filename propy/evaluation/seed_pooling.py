"""One set of numbers per variant from its runs, and every comparison with
an interval.

A trained variant is trained once per seed of ``study.seeds`` (run ``<variant>-s<seed>``); a
zero-shot baseline is one run (``<variant>``). Pooling gives, per variant, the mean and the
standard deviation over its runs of every metric, and the 95% bootstrap interval of SumR over
test queries and seeds. Every row of every ``study.ablations`` table, and every zero-shot
baseline, is compared with ``report.headline`` (``full``): the change in mean SumR with a paired
bootstrap interval (queries shared, seeds drawn per side; ``propy.evaluation.metrics.bootstrap_sumr``).
A change whose interval holds 0 is reported as "no difference", never as a gain or a loss. Every
change also carries its minimum detectable effect (``mde``: at level 1 - LEVEL, unadjusted, and
power ``claims.power``; ``propy.evaluation.claims``): these comparisons are exploratory.

The verdicts are the pre-registered tests of ``claims.tests`` alone (``claims.json``): per claim,
Δ on its one metric and query kind with its interval, bootstrap p-value and MDE, Holm-corrected
across the claims' tests at family-wise level ``claims.alpha``. A localisation claim (``loc``) is
judged on the moments that both variants' proposals can reach at ``eval.probe_iou``, and reports
each variant's reachability ceiling (the share of the kind's moments its proposals can reach).
A claim whose variants are not in the study is listed as skipped, with the reason.

A trained run whose best validation epoch (its checkpoint's) lies in the first fifth of its
training is flagged (``early_best`` in the variant's pooled metrics): its curve may not have
learnt, or it over-fits at once.

Outputs: ``<out-metrics>/<variant>.json`` (the per-run schema of ``evaluate``, values averaged,
plus ``sd``, ``SumR_ci``, ``runs``, ``early_best``), ``<out-metrics>/comparisons.json``,
``<out-metrics>/claims.json`` and ``<out-results>/<variant>/breakdown.json`` (per-group recalls
averaged over runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from propy.config import ClaimTest, Params
from propy.errors import DataError
from propy.evaluation.claims import holm, minimum_detectable_effect, paired_test, projected_mde, reachable
from propy.evaluation.metrics import bootstrap_mean, sumr_per_query
from propy.evaluation.probes import localisation_hits
from propy.runtime.files import atomic_write_json, iter_jsonl, read_json

SAMPLES = 2000
LEVEL = 0.95
SPREAD = ("R1", "R5", "R10", "R100", "SumR", "MedR", "MeanR")  # metrics whose sd over runs is reported
EARLY = 0.2  # a best validation epoch at or before this fraction of the epochs is flagged
# claims.json's design projection: test-set sizes x seeds per trained variant, and its bootstrap samples
PROJECTED_QUERIES = (1000, 2000, 4000)
PROJECTED_SEEDS = (3, 5, 10)
PROJECTION_SAMPLES = 500


def run_name(variant: str, seed: int | None) -> str:
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
    pooled = _mean([{k: v for k, v in run.items() if k not in ("environment", "gallery")} for run in values])
    for key in ("environment", "gallery"):  # the same for every run: where they ran (one machine), what they saw
        if key in values[0]:
            pooled[key] = values[0][key]
    pooled["runs"] = list(runs)
    pooled["epoch"] = [v.get("epoch") for v in values]
    pooled["sd"] = {
        k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0 for k in SPREAD if k in values[0]
    }
    return pooled


def pool_breakdown(breakdowns: list[dict]) -> dict:
    """Per-group recalls averaged over runs (the groups and their sizes are the same in every run)."""
    out = {}
    for by in breakdowns[0]:
        groups = [b[by] for b in breakdowns]
        out[by] = [_mean(list(rows)) for rows in zip(*groups)]
    return out


@dataclass
class Runs:
    """Per-query outcomes of a variant's runs, rows = runs, columns = the test queries in one order."""

    ranks: np.ndarray  # [S, Nq] rank of the own video
    kinds: list[str] | None  # [Nq] query kind (datasets with rival probes)
    wins: np.ndarray | None  # [S, Nq] own-vs-rival pairwise accuracy of each query (NaN: no rival)
    located: np.ndarray | None  # [S, Nq] the best own-video event overlaps the moment (eval.probe_iou)
    reach: np.ndarray | None = None  # [Nq] some proposal of the variant overlaps the moment (eval.probe_iou)


def load_run(results: Path, run: str, order: list[str] | None, iou: float) -> tuple[list[str], dict]:
    """(desc_ids, per-query outcomes) of one run from its ``rankings.jsonl`` and ``events.npz``."""
    path = results / run / "rankings.jsonl"
    rows = {obj["desc_id"]: obj for _, obj in iter_jsonl(path, f"missing (written by evaluate of {run})")}
    if order is None:
        order = list(rows)
    elif set(rows) != set(order):
        raise DataError(f"{path}: not the same test queries as the other runs ({len(rows)} vs {len(order)})")
    picked = [rows[d] for d in order]
    out = {"ranks": np.array([r["rank"] for r in picked])}
    if "kind" in picked[0]:
        out["kinds"] = [r["kind"] for r in picked]
        out["wins"] = np.array([np.nan if r["rival_win"] is None else r["rival_win"] for r in picked])
        with np.load(results / run / "events.npz") as events:
            at = {str(d): i for i, d in enumerate(events["desc_ids"])}
            index = [at[d] for d in order]
            out["located"] = localisation_hits(
                events["gt_event_scores"][index],
                events["proposals"],
                events["ts"][index],
                events["duration"][index],
                iou,
            )
            out["reach"] = reachable(events["proposals"], events["duration"][index], events["ts"][index], iou)
    return order, out


def load_runs(results: Path, runs: list[str], order: list[str] | None, iou: float) -> tuple[list[str], Runs]:
    loaded = []
    for run in runs:
        order, one = load_run(results, run, order, iou)
        loaded.append(one)
    stack = lambda key: np.stack([r[key] for r in loaded]) if key in loaded[0] else None  # noqa: E731
    return order, Runs(stack("ranks"), loaded[0].get("kinds"), stack("wins"), stack("located"), loaded[0].get("reach"))


def verdict(low: float, high: float) -> str:
    return "gain" if low > 0 else "loss" if high < 0 else "no difference"


def _interval(values: np.ndarray, reference: np.ndarray | None = None) -> list[float]:
    return list(bootstrap_mean(values, reference, samples=SAMPLES, level=LEVEL))


def probe_columns(runs: Runs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per kind: (columns of the queries with a rival, columns of all its queries)."""
    kinds = np.array(runs.kinds)
    has_rival = ~np.isnan(runs.wins[0])
    return {k: (np.flatnonzero((kinds == k) & has_rival), np.flatnonzero(kinds == k)) for k in sorted(set(kinds))}


def pool_probes(runs: Runs, iou: float) -> dict:
    """Per kind: pairwise accuracy and own-video localisation (percent) over queries and runs, with
    their 95% intervals over both (replacing the per-run intervals that the runs' metrics carry)."""
    out = {}
    for kind, (rival, every) in probe_columns(runs).items():
        entry = {"n": int(every.size), "n_rival": int(rival.size)}
        if rival.size:
            wins = runs.wins[:, rival]
            entry.update(pairwise=100.0 * float(wins.mean()), ci=[100.0 * x for x in _interval(wins)])
        located = runs.located[:, every].astype(np.float64)
        entry.update(
            {f"loc_IoU{iou:g}": 100.0 * float(located.mean()), "loc_ci": [100.0 * x for x in _interval(located)]}
        )
        if runs.reach is not None:  # the ceiling of loc: the share of moments some proposal reaches
            entry[f"reach_IoU{iou:g}"] = 100.0 * float(runs.reach[every].mean())
        out[kind] = entry
    return out


def _paired(values: np.ndarray, reference: np.ndarray, params: Params, alpha: float = 1 - LEVEL) -> dict:
    return paired_test(values, reference, alpha=alpha, power=params.claims.power, samples=SAMPLES, level=LEVEL)


def compare(runs: dict[str, Runs], params: Params, variant: str, reference: str) -> dict:
    """Change of ``variant`` from ``reference`` in mean SumR and, per query kind, in pairwise accuracy
    and localisation, each with its paired bootstrap interval over queries and seeds and its MDE."""
    ks = params.eval.ks
    test = _paired(sumr_per_query(runs[variant].ranks, ks), sumr_per_query(runs[reference].ranks, ks), params)
    low, high = test["ci"]
    row = {
        "variant": variant,
        "reference": reference,
        "delta_SumR": test["delta"],
        "ci": [low, high],
        "verdict": verdict(low, high),
        "mde": test["mde"],
    }
    if runs[variant].wins is not None and runs[reference].wins is not None:
        row["probes"] = {}
        for kind, (rival, every) in probe_columns(runs[variant]).items():
            entry = {}
            for name, values, cols in (("pairwise", "wins", rival), ("loc", "located", every)):
                if cols.size:
                    a = 100.0 * getattr(runs[variant], values)[:, cols].astype(np.float64)
                    b = 100.0 * getattr(runs[reference], values)[:, cols].astype(np.float64)
                    test = _paired(a, b, params)
                    lo, hi = test["ci"]
                    entry[name] = {
                        "delta": test["delta"],
                        "ci": [lo, hi],
                        "verdict": verdict(lo, hi),
                        "mde": test["mde"],
                    }
            row["probes"][kind] = entry
    return row


METRIC_NAMES = {
    "SumR": "SumR",
    "pairwise": "own-vs-rival pairwise accuracy (%)",
    "loc": "localisation (%) on the moments both can reach",
}
VERDICTS = ("supported", "contradicted", "not shown")  # Holm rejects with Δ > 0, rejects with Δ < 0, does not reject


def _claim_columns(runs: dict[str, Runs], test: ClaimTest) -> tuple[np.ndarray | None, str]:
    """The columns (test queries) a claim is judged on and why not, when it cannot be: the queries of
    its kind; for ``pairwise`` those with a rival; for ``loc`` those both variants' proposals reach."""
    mine, theirs = runs[test.variant], runs[test.against]
    if test.kind != "all" and mine.kinds is None:
        return None, f"the dataset has no query kinds, so no {test.kind} queries"
    if test.metric != "SumR" and (mine.wins is None or theirs.wins is None):
        return None, "the dataset has no rival probes (rivals.json)"
    keep = _of_kind(mine, test.kind)
    if test.metric == "pairwise":
        keep &= ~np.isnan(mine.wins[0])
    if test.metric == "loc":
        keep &= mine.reach & theirs.reach
    columns = np.flatnonzero(keep)
    if columns.size == 0:
        return None, f"no test query of kind {test.kind} to judge {test.metric} on"
    return columns, ""


def _of_kind(runs: Runs, kind: str) -> np.ndarray:
    """bool [Nq]: the test queries of ``kind`` ("all": every one)."""
    return np.ones(runs.ranks.shape[1], dtype=bool) if kind == "all" else np.asarray(runs.kinds) == kind


def _per_query(runs: Runs, params: Params, metric: str, columns: np.ndarray) -> np.ndarray:
    if metric == "SumR":
        return sumr_per_query(runs.ranks[:, columns], params.eval.ks)
    outcome = runs.wins if metric == "pairwise" else runs.located
    return 100.0 * outcome[:, columns].astype(np.float64)


def judge_claims(runs: dict[str, Runs], params: Params) -> dict:
    """claims.json's content: every claim of ``claims.tests`` tested (or skipped, with the reason), and
    the verdicts of Holm's procedure across the tests that ran (module docstring)."""
    cfg, iou = params.claims, params.eval.probe_iou
    entries: dict[str, dict] = {}
    samples: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}  # per tested claim: its outcomes, query share
    for name, test in cfg.tests.items():
        entry = {
            "name": name,
            "claim": test.claim,
            "variant": test.variant,
            "against": test.against,
            "kind": test.kind,
            "metric": test.metric,
            "primary_test": f"{test.variant} - {test.against}: {METRIC_NAMES[test.metric]}, "
            f"{'all' if test.kind == 'all' else test.kind} queries",
        }
        missing = [v for v in (test.variant, test.against) if v not in runs]
        columns, why = (
            (None, f"{', '.join(map(repr, missing))} not in study.trained or study.zero_shot: not run, so not tested")
            if missing
            else _claim_columns(runs, test)
        )
        if columns is None:
            entries[name] = {**entry, "verdict": "skipped", "note": why}
            continue
        if test.metric == "loc":  # each variant's reachability ceiling over the kind's moments
            kind = _of_kind(runs[test.variant], test.kind)
            entry["ceiling"] = {v: 100.0 * float(runs[v].reach[kind].mean()) for v in (test.variant, test.against)}
        a, b = (_per_query(runs[v], params, test.metric, columns) for v in (test.variant, test.against))
        entries[name] = {
            **entry,
            "n": int(columns.size),
            **paired_test(a, b, alpha=cfg.alpha, power=cfg.power, samples=SAMPLES, level=LEVEL),
        }
        samples[name] = (a, b, columns.size / runs[test.variant].ranks.shape[1])
    tested = {name: e["p"] for name, e in entries.items() if "p" in e}
    for name, result in holm(tested, cfg.alpha).items():
        entry = entries[name]
        entry.update(result, mde=minimum_detectable_effect(entry["se"], result["alpha_holm"], cfg.power))
        a, b, share = samples[name]
        entry["projection"] = [
            {
                "test_queries": total,
                "seeds": seeds,
                "n": n,
                "mde": projected_mde(
                    a, b, queries=n, runs=seeds, alpha=result["alpha_holm"], power=cfg.power, samples=PROJECTION_SAMPLES
                ),
            }
            for total in PROJECTED_QUERIES
            for n in [max(1, round(share * total))]  # the claim's share of a test split of `total` queries
            for seeds in PROJECTED_SEEDS
        ]
        entry["verdict"] = VERDICTS[2] if not result["rejected"] else VERDICTS[0] if entry["delta"] > 0 else VERDICTS[1]
    return {
        "alpha": cfg.alpha,
        "power": cfg.power,
        "probe_iou": iou,
        "level": LEVEL,
        "samples": SAMPLES,
        "seeds": params.study.seeds,
        "tests_run": len(tested),
        "p_value": "two-sided, from the paired bootstrap over queries and seeds: "
        "min(1, 2 (min(#{Δ* <= 0}, #{Δ* >= 0}) + 1) / (B + 1))",
        "mde": "(z_{1-α/2} + z_{power}) × SE, SE the sd of the bootstrap Δ*, α the level Holm compared the test with",
        "projection": "the MDE had the test split test_queries queries (the claim's share of them: n) and each "
        f"trained variant `seeds` runs: the bootstrap drawing that many of the observed ({PROJECTION_SAMPLES} samples)",
        "claims": list(entries.values()),
    }


def early_best(params: Params, variant: str, runs: list[str], epochs: list[int | None]) -> dict:
    """The runs whose best validation epoch (1-based) is within the first fifth of ``train.epochs``."""
    planned = ((params.variants[variant] or {}).get("train") or {}).get("epochs", params.train.epochs)
    limit = EARLY * planned
    return {
        "epochs": planned,
        "limit": limit,
        "runs": [run for run, epoch in zip(runs, epochs) if epoch is not None and epoch <= limit],
    }


def pool(params: Params, run_metrics: Path, run_results: Path, out_metrics: Path, out_results: Path) -> dict:
    """Pool every variant of the study; returns comparisons.json's content."""
    variants = [*params.study.trained, *params.study.zero_shot]
    iou = params.eval.probe_iou
    runs: dict[str, Runs] = {}
    order: list[str] | None = None
    for variant in variants:
        names = runs_of(params, variant)
        metrics = {
            run: read_json(run_metrics / f"{run}.json", f"missing (written by evaluate of {run})") for run in names
        }
        order, runs[variant] = load_runs(run_results, names, order, iou)
        pooled = pool_metrics(metrics)
        if variant in params.study.trained:
            pooled["early_best"] = early_best(params, variant, names, pooled["epoch"])
        pooled["SumR_ci"] = _interval(sumr_per_query(runs[variant].ranks, params.eval.ks))
        if runs[variant].wins is not None:
            pooled["probes"] = {
                k: {**pooled.get("probes", {}).get(k, {}), **v} for k, v in pool_probes(runs[variant], iou).items()
            }
        breakdowns = [
            read_json(run_results / run / "breakdown.json", f"missing (written by evaluate of {run})") for run in names
        ]
        atomic_write_json(out_results / variant / "breakdown.json", pool_breakdown(breakdowns))
        atomic_write_json(out_metrics / f"{variant}.json", pooled)
    headline = params.report.headline
    tables = {
        name: [compare(runs, params, v, headline) for v in rows if v != headline]
        for name, rows in params.study.ablations.items()
    }
    tables["zero_shot"] = [compare(runs, params, v, headline) for v in params.study.zero_shot]
    comparisons = {
        "reference": headline,
        "seeds": params.study.seeds,
        "level": LEVEL,
        "samples": SAMPLES,
        "num_queries": len(order or []),
        "tables": tables,
    }
    atomic_write_json(out_metrics / "comparisons.json", comparisons)
    atomic_write_json(out_metrics / "claims.json", judge_claims(runs, params))
    return comparisons
