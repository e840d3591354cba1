"""Choose the caption gap of the small CLIP on the validation split: how fair the zero-shot baseline is.

At each level of ``sweep.caption_gaps`` (``propy.data.wording``) the small CLIP is
pre-trained with its captions reworded at that gap, the zero-shot baselines
(``study.zero_shot``) are scored on the validation split, and ``sweep.variant`` is
trained once (``sweep.seed``) on that CLIP and scored by its best validation SumR.
The rule (params.yaml) judges the CLIP, never the claims: the smallest gap from
``sweep.caption_gap_min`` on (the first level whose captions share no action word
and no sentence form with the queries) at which the CLIP still tells the visual
states apart in its own words, its zero-shot caption accuracy on validation frames
at most ``sweep.caption_gap_tolerance`` points below the first level's. A rule on the
trained model's score would favour the level that suits ProPy, and the claims are
tested against these baselines. The test split is not read. Each level trains into
its own folder, so an interrupted sweep resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

from propy.config import Layout, Params, deep_merge, read_params, resolve
from propy.runtime.files import atomic_write_json, read_json


def choose_gap(rows: list[dict], least: int, tolerance: float) -> int | None:
    """The smallest ``gap`` >= ``least`` whose ``zero_shot_accuracy`` is at most ``tolerance`` points
    below the smallest gap's row; None when no row qualifies."""
    reference = min(rows, key=lambda r: r["gap"])["zero_shot_accuracy"]
    fit = [r["gap"] for r in rows if r["gap"] >= least and r["zero_shot_accuracy"] >= reference - tolerance]
    return min(fit) if fit else None


def _at_gap(raw: dict, variant: str, gap: int, clip: Path, source: str) -> Params:
    """``variant`` resolved with the CLIP pre-trained at caption gap ``gap`` (saved at ``clip``)."""
    edited = deep_merge(
        raw, {"pretrain_clip": {"caption_gap": gap, "enabled": True}, "clip": {"pretrained": str(clip)}}
    )
    return resolve(edited, variant, source)


def gap_sweep(params_path: str, layout: Layout, out: Path, models: Path) -> dict:
    """Measure every level (resuming finished ones), write ``out`` and return its content."""
    from propy.evaluation.encode import load_split, retrieval  # torch: imported only when a sweep runs
    from propy.model.backbone import load_clip
    from propy.model.checkpoint import pick_device
    from propy.model.network import build_model
    from propy.train.pretrain_clip import pretrain
    from propy.train.trainer import train

    raw = read_params(params_path)
    cfg = resolve(raw, source=params_path).sweep
    device = pick_device(None)
    rows = []
    for gap in cfg.caption_gaps:
        started = time.perf_counter()
        folder = models / f"gap{gap}"
        clip, clip_metrics = folder / "clip" / "clip.pt", folder / "pretrain_clip.json"
        base = _at_gap(raw, cfg.variant, gap, clip, params_path)
        if not (clip.is_file() and clip_metrics.is_file()):
            clip.parent.mkdir(parents=True, exist_ok=True)
            pretrain(base, layout, clip, clip_metrics, device)
        row: dict = {
            "gap": gap,
            "zero_shot_accuracy": read_json(clip_metrics, "written by pretrain")["zero_shot_accuracy"],
        }
        for name in base.study.zero_shot:
            params = _at_gap(raw, name, gap, clip, params_path)
            backbone = load_clip(params.clip)
            model = build_model(params.model, backbone.model).to(device)
            row[f"{name}_val_SumR"] = retrieval(model, load_split(params, layout, "val", backbone), params, device)[
                "SumR"
            ]
        log_path = folder / cfg.variant / "log.json"
        train(base, layout, cfg.seed, folder / cfg.variant, log_path, device=device.type)
        best = max(read_json(log_path, "written by train"), key=lambda e: e["val_SumR"])
        row.update(trained_val_SumR=best["val_SumR"], best_epoch=best["epoch"])
        row["wall_seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"gap-sweep gap {gap}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k != "gap"))
    result = {
        "variant": cfg.variant,
        "seed": cfg.seed,
        "split": "val",
        "least": cfg.caption_gap_min,
        "tolerance": cfg.caption_gap_tolerance,
        "zero_shot": list(base.study.zero_shot),
        "rows": rows,
        "chosen": choose_gap(rows, cfg.caption_gap_min, cfg.caption_gap_tolerance),
    }
    atomic_write_json(out, result)
    return result
