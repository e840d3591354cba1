"""Choose training settings on the validation split, never on test.

Every combination of ``sweep.grid`` (dotted keys of the overridable blocks, e.g. ``train.lr``)
is merged onto ``sweep.variant`` and trained once with ``sweep.seed``; a run is scored by its best
validation SumR, the number ``train`` already logs per epoch. The test split is not read. The
result, ``sweep.json``, lists every combination with its score, best epoch and time, and names
the best one; copying it into params.yaml is the user's decision (the training report shows the
table). Each combination trains into its own folder, so an interrupted sweep resumes.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from propy.config import (
    Layout,
    deep_merge,
    read_params,
    resolve,
)
from propy.runtime.files import atomic_write_json, read_json

SWEEP_VARIANT = "sweep"  # the name each combination is resolved under


def combinations(grid: dict[str, list]) -> list[dict[str, object]]:
    """Every combination of the grid's values, in grid order: ``[{"train.lr": 0.01, ...}, ...]``."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def nested(combo: dict[str, object]) -> dict:
    """``{"train.lr": x}`` -> ``{"train": {"lr": x}}``."""
    out: dict = {}
    for dotted, value in combo.items():
        block, _, key = dotted.partition(".")
        out.setdefault(block, {})[key] = value
    return out


def run_name(combo: dict[str, object]) -> str:
    return "_".join(f"{k.split('.')[-1]}{v}" for k, v in combo.items())


def sweep(params_path: str, layout: Layout, out: Path, models: Path) -> dict:
    """Train every combination (resuming finished ones) and write ``out``; returns its content."""
    from propy.train.trainer import train  # torch: imported only when a sweep runs

    raw = read_params(params_path)
    base = resolve(raw, source=params_path)
    cfg = base.sweep
    rows = []
    for combo in combinations(cfg.grid):
        name = run_name(combo)
        variant = deep_merge(raw["variants"][cfg.variant] or {}, nested(combo))
        params = resolve({**raw, "variants": {**raw["variants"], SWEEP_VARIANT: variant}}, SWEEP_VARIANT, params_path)
        started = time.perf_counter()
        log_path = models / name / "log.json"
        train(params, layout, cfg.seed, models / name, log_path)
        log = read_json(log_path, "missing (written by train)")
        best = max(log, key=lambda e: e["val_SumR"])
        rows.append(
            {
                **combo,
                "val_SumR": best["val_SumR"],
                "best_epoch": best["epoch"],
                "seconds": round(sum(e["seconds"] for e in log), 1),
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(f"sweep {name}: best val SumR {best['val_SumR']:.1f} at epoch {best['epoch']}")
    chosen = max(rows, key=lambda r: r["val_SumR"])
    result = {
        "variant": cfg.variant,
        "seed": cfg.seed,
        "split": "val",
        "grid": cfg.grid,
        "rows": rows,
        "best": {k: chosen[k] for k in cfg.grid},
    }
    atomic_write_json(out, result)
    return result
