"""What the report notebooks call: load stage outputs, build tables, draw and save figures.

The notebooks stay thin (parameters, then one call per table or figure) so their
logic is tested here. Loaders raise DataError naming the missing file and the stage
that writes it; every table is saved as Markdown and CSV atomically. Figures are drawn by
``propy.reports.figures``, the pages' sentences written by ``propy.reports.text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propy.config import Layout, params_comments
from propy.data.wording import EXAMPLES
from propy.errors import DataError
from propy.evaluation.metrics import bin_ratios, bootstrap_sumr
from propy.evaluation.probes import read_query_kinds
from propy.runtime import files
from propy.runtime.files import atomic_write_text

RECALLS = ("R1", "R5", "R10", "R100", "SumR")


# --------------------------------------------------------------------------- loading


def _missing(written_by: str) -> str:
    return f"missing input (written by {written_by}; run `dvc repro` first)"


def read_json(path: str | Path, written_by: str = "an earlier stage") -> Any:
    """Parsed JSON; DataError naming the file (and who writes it) when missing or invalid."""
    return files.read_json(path, _missing(written_by))


def read_jsonl(path: str | Path, written_by: str = "an earlier stage") -> list[dict]:
    return [obj for _, obj in files.iter_jsonl(path, _missing(written_by))]


def load_metrics(variants: Sequence[str], root: str | Path) -> pd.DataFrame:
    """One row per variant (index, in the given order) of the pooled metrics: kind, number of runs,
    mean recalls, MedR, MeanR, the sd of SumR over runs, its 95% interval (bounds, and as text),
    unnormalised SumR."""
    rows = []
    for name in variants:
        path = Path(root) / f"{name}.json"
        m = read_json(path, "pool")
        row = {"variant": name, "kind": m.get("kind", ""), "runs": len(m.get("runs", [])) or 1}
        for key in (*RECALLS, "MedR", "MeanR"):
            if key not in m:
                raise DataError(f"{path}: field '{key}' missing")
            row[key] = float(m[key])
        row["SumR sd"] = float(m.get("sd", {}).get("SumR", np.nan))
        row["SumR low"], row["SumR high"] = m.get("SumR_ci", (np.nan, np.nan))
        row["SumR 95% CI"] = f"[{row['SumR low']:.1f}, {row['SumR high']:.1f}]"
        row["unnormalised SumR"] = float(m.get("unnormalized", {}).get("SumR", np.nan))
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def load_logs(variants: Sequence[str], seeds: Sequence[int], root: str | Path, by_seed: bool = False) -> pd.DataFrame:
    """Long table of the per-epoch training logs: one row per (variant, epoch), averaged over seeds,
    or with ``by_seed`` one row per (variant, seed, epoch)."""
    frames = []
    for name in variants:
        for seed in seeds:
            path = Path(root) / f"{name}-s{seed}.json"
            entries = read_json(path, f"train@{name}-{seed}")
            if not isinstance(entries, list) or not entries:
                raise DataError(f"{path}: expected a non-empty list of epochs")
            frames.append(pd.DataFrame(entries).assign(variant=name, seed=seed))
    runs = pd.concat(frames, ignore_index=True)
    if by_seed:
        return runs
    return runs.drop(columns="seed").groupby(["variant", "epoch"], sort=False).mean().reset_index()


def evaluated_epochs(variants: Sequence[str], seeds: Sequence[int], root: str | Path) -> dict[str, list[int]]:
    """Per trained variant, the epoch of the checkpoint each seed's test numbers come from, in the
    order of ``seeds``, as ``pool`` recorded it (its ``runs`` and ``epoch`` lists)."""
    out = {}
    for name in variants:
        path = Path(root) / f"{name}.json"
        m = read_json(path, "pool")
        runs, epochs = m.get("runs"), m.get("epoch")
        if not isinstance(runs, list) or not isinstance(epochs, list) or len(runs) != len(epochs):
            raise DataError(f"{path}: expected lists 'runs' and 'epoch' of the same length")
        by_run = dict(zip(runs, epochs, strict=True))
        missing = [f"{name}-s{seed}" for seed in seeds if f"{name}-s{seed}" not in by_run]
        if missing:
            raise DataError(f"{path}: no run {', '.join(missing)} (pooled runs: {', '.join(runs)})")
        out[name] = [int(by_run[f"{name}-s{seed}"]) for seed in seeds]
    return out


def load_breakdown(variants: Sequence[str], by: str, root: str | Path) -> pd.DataFrame:
    """Long table of ``breakdown.json[by]`` ("by_ratio" or "by_kind") for each variant."""
    frames = []
    for name in variants:
        path = Path(root) / name / "breakdown.json"
        data = read_json(path, "pool")
        if by not in data:
            raise DataError(f"{path}: field '{by}' missing")
        frames.append(pd.DataFrame(data[by]).assign(variant=name))
    return pd.concat(frames, ignore_index=True)


def load_events(run: str, root: str | Path) -> dict[str, np.ndarray]:
    """``events.npz`` of one run (``<variant>-s<seed>``, or a zero-shot ``<variant>``)."""
    path = Path(root) / run / "events.npz"
    if not path.is_file():
        raise DataError(f"{path}: missing input (written by evaluate of {run}; run `dvc repro` first)")
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


# --------------------------------------------------------------------------- tables


def metric_table(metrics: pd.DataFrame, variants: Sequence[str], columns: Sequence[str] = RECALLS) -> pd.DataFrame:
    """The rows ``variants`` (in that order) and ``columns`` of ``load_metrics``' table."""
    missing = [v for v in variants if v not in metrics.index]
    if missing:
        raise DataError(f"no metrics for variant(s) {', '.join(missing)}")
    return metrics.loc[list(variants), list(columns)]


def ablation_table(metrics: pd.DataFrame, variants: Sequence[str], metrics_root: str | Path) -> pd.DataFrame:
    """``metric_table`` rows plus each variant's change in mean SumR from the reference (``full``)
    with its 95% bootstrap interval over test queries and seeds, the smallest change the design detects
    (MDE, 80% power) and the verdict: a change whose interval holds 0 is "no difference" (from
    ``comparisons.json``, written by ``pool``; exploratory: the verdicts are ``verdict_table``'s)."""
    table = metric_table(metrics, variants, (*RECALLS, "SumR sd")).copy()
    path = Path(metrics_root) / "comparisons.json"
    comparisons = read_json(path, "pool")
    reference = comparisons["reference"]
    rows = {row["variant"]: row for rows in comparisons["tables"].values() for row in rows}
    missing = [v for v in variants if v != reference and v not in rows]
    if missing:
        raise DataError(f"{path}: no comparison for variant(s) {', '.join(missing)}")
    table[f"ΔSumR vs {reference}"] = [rows[v]["delta_SumR"] if v in rows else 0.0 for v in variants]
    table["95% CI of Δ"] = [
        f"[{rows[v]['ci'][0]:+.1f}, {rows[v]['ci'][1]:+.1f}]" if v in rows else "" for v in variants
    ]
    table["MDE"] = [f"{rows[v]['mde']:.1f}" if "mde" in rows.get(v, {}) else "" for v in variants]
    table["verdict"] = [rows[v]["verdict"] if v in rows else "reference" for v in variants]
    return table


def breakdown_table(breakdown: pd.DataFrame, group: str, metric: str = "SumR") -> pd.DataFrame:
    """Pivot a breakdown: rows = bins/kinds (first-seen order), columns = variants, values = ``metric``."""
    order = list(dict.fromkeys(breakdown[group]))
    table = breakdown.pivot(index=group, columns="variant", values=metric)
    return table.loc[order, list(dict.fromkeys(breakdown["variant"]))]


def vcmr_table(variants: Sequence[str], root: str | Path) -> pd.DataFrame:
    """Weakly-supervised VCMR recalls: rows = variants, columns = "IoU0.5 R1", ..."""
    rows = {}
    for name in variants:
        vcmr = read_json(Path(root) / f"{name}.json", "pool").get("vcmr", {})
        rows[name] = {f"{iou} {k}": v for iou, recalls in vcmr.items() for k, v in recalls.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def separability_table(variants: Sequence[str], root: str | Path) -> pd.DataFrame:
    """Mean cosine of rival query pairs per kind (``all_queries``: of every query pair, for scale), for
    the frozen text tower (first row) and each variant's trained one; lower separates better."""
    rows: dict[str, dict] = {}
    for name in variants:
        sep = read_json(Path(root) / f"{name}.json", "pool").get("text_separability")
        if sep:
            rows.setdefault("frozen CLIP", sep["frozen"])
            rows[name] = sep["trained"]
    return pd.DataFrame.from_dict(rows, orient="index")


def sweep_table(path: str | Path, chosen: dict[str, Any] | None = None) -> pd.DataFrame | None:
    """``propy sweep``'s combinations, best validation SumR first: one column per swept setting (named
    after its params.yaml key), the best validation SumR and its epoch, and "used by the study" marking
    the row whose settings are ``chosen`` (the study's values of the swept keys). None when the sweep
    has not been run (its file is absent)."""
    if not path or not Path(path).is_file():
        return None
    sweep = read_json(path, "propy sweep")
    keys = list(sweep["grid"])
    table = pd.DataFrame(sweep["rows"]).sort_values("val_SumR", ascending=False, kind="stable")
    table = table[[*keys, "val_SumR", "best_epoch"]].rename(
        columns={"val_SumR": "best validation SumR", "best_epoch": "at epoch"}
    )
    if chosen is not None:
        used = np.logical_and.reduce([np.isclose(table[k].astype(float), float(chosen[k])) for k in keys])
        table["used by the study"] = np.where(used, "◀ chosen", "")
    for key in keys:  # a setting as params.yaml writes it (0.003, not 0.0 at the table's rounding)
        table[key] = [f"{v:g}" if isinstance(v, float) else str(v) for v in table[key]]
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def gap_sweep_table(path: str | Path, used: int) -> pd.DataFrame | None:
    """``propy gap-sweep``'s levels in order: the captions' wording, the pre-trained CLIP's zero-shot
    caption accuracy, each zero-shot baseline's and the trained variant's validation SumR, the rule's
    choice and the level the study uses (``used``, pretrain_clip.caption_gap). None when not run."""
    if not path or not Path(path).is_file():
        return None
    sweep = read_json(path, "propy gap-sweep")
    rows = []
    for row in sweep["rows"]:
        rows.append(
            {
                "caption gap": row["gap"],
                "a caption at this gap": EXAMPLES[row["gap"]],
                "zero-shot caption accuracy (%)": row["zero_shot_accuracy"],
                **{f"{z} val SumR": row[f"{z}_val_SumR"] for z in sweep["zero_shot"]},
                f"{sweep['variant']} val SumR (trained)": row["trained_val_SumR"],
                "rule": "◀ chosen" if row["gap"] == sweep["chosen"] else "",
                "used by the study": "◀ used" if row["gap"] == used else "",
            }
        )
    return pd.DataFrame(rows).set_index("caption gap")


def study_settings(params_path: str | Path, sweep_path: str | Path) -> dict[str, Any] | None:
    """The study's values (params.yaml, for the sweep's variant) of the keys ``propy sweep`` swept:
    which row of the sweep the study uses; None when the sweep has not been run."""
    from propy.config import load_params

    if not sweep_path or not Path(sweep_path).is_file():
        return None
    sweep = read_json(sweep_path, "propy sweep")
    params = load_params(params_path, variant=sweep.get("variant"))
    out = {}
    for key in sweep["grid"]:
        block, _, name = key.partition(".")
        if not hasattr(getattr(params, block, None), name):
            raise DataError(f"{sweep_path}: swept key {key!r} is not a setting of {params_path}")
        out[key] = getattr(getattr(params, block), name)
    return out


def to_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub Markdown table (index as first column); floats rounded to ``digits``."""

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "-" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(name=None):  # keeps each column's type (iterrows would make ints floats)
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def save_table(table: pd.DataFrame, name: str, tables_dir: str | Path, digits: int = 1) -> tuple[Path, Path]:
    """Write ``<name>.md`` (floats to ``digits``) and ``<name>.csv`` atomically; returns both paths."""
    md, csv = Path(tables_dir) / f"{name}.md", Path(tables_dir) / f"{name}.csv"
    atomic_write_text(md, to_markdown(table, digits))
    atomic_write_text(csv, table.to_csv())
    return md, csv


# --------------------------------------------------------------------------- data report


def annotation_stats(records_by_split: dict[str, list]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-split summary table, per-query table with split, video, desc_id, duration and moment/video ratio)."""
    queries = pd.DataFrame(
        [
            {
                "split": split,
                "vid_name": r.vid_name,
                "desc_id": r.desc_id,
                "duration": r.duration,
                "ratio": (r.ts[1] - r.ts[0]) / r.duration,
            }
            for split, records in records_by_split.items()
            for r in records
        ]
    )
    if queries.empty:
        raise DataError("no annotation records: every split is empty")
    videos = queries.drop_duplicates(["split", "vid_name"])
    summary = pd.DataFrame(
        {
            "videos": videos.groupby("split", sort=False).size(),
            "queries": queries.groupby("split", sort=False).size(),
            "mean duration (s)": videos.groupby("split", sort=False)["duration"].mean(),
            "mean moment/video": queries.groupby("split", sort=False)["ratio"].mean(),
        }
    )
    summary.index.name = "split"
    return summary, queries


def ratio_histogram_by_kind(stats: dict) -> pd.DataFrame:
    """Queries per moment/video ratio bin (rows, "0.1-0.2") and query kind (columns), all splits of the
    synthetic ``stats.json`` summed; empty when it has no histogram."""
    total: dict[str, np.ndarray] = {}
    edges: list[float] = []
    for split in stats.get("splits", {}).values():
        hist = split.get("ratio_histogram", {})
        edges = hist.get("edges", edges)
        for kind, counts in hist.get("counts", {}).items():
            total[kind] = total.get(kind, 0) + np.asarray(counts)
    table = pd.DataFrame(total, index=[f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])])
    table.index.name = "moment / video"
    return table


def video_events(data_root: str | Path, vid_name: str, records: Sequence) -> list[tuple[float, float, str]]:
    """The video's events (start s, end s, text): the synthetic ``captions.jsonl`` if present (the
    spans the video was built from), else its query moments and descriptions."""
    captions = Layout(Path(data_root), None).captions
    if captions.is_file():
        events = {
            (c["start"], c["end"], c["caption"]) for c in read_jsonl(captions, "synth") if c["vid_name"] == vid_name
        }
    else:
        events = {(*r.ts, r.desc) for r in records if r.vid_name == vid_name}
    return sorted(events)


def training_summary(logs: pd.DataFrame, evaluated: dict[str, list[int]]) -> pd.DataFrame:
    """Per variant, from the seed-mean logs: epochs run, final loss, training time; and the epoch each
    seed's evaluated checkpoint comes from (``evaluated_epochs``) with the mean validation SumR there."""
    rows = {}
    for name, group in logs.groupby("variant", sort=False):
        rows[name] = {
            "epochs": len(group),
            "final loss": float(group["loss"].iloc[-1]),
            "evaluated epochs": evaluated[name],
            "time (s)": float(group["seconds"].sum()),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table


def split_counts(stats: dict, summary: pd.DataFrame, present: dict[str, int] | None = None) -> pd.DataFrame:
    """Per split: videos generated and queries written (``stats.json``), videos in the split's gallery
    (those with a query: the annotations' ``summary``), the videos left out of it and the probes
    dropped (not unique to their video, or their rival lost its own). DataError when stats.json and
    the annotations disagree on the queries. Without stats.json (a real dataset) the gallery is the
    annotated videos present in the frame cache (``present``: split -> videos; all when None)."""
    rows = {}
    for split, st in stats.get("splits", {}).items():
        if split not in summary.index:
            continue
        queries = int(summary.loc[split, "queries"])
        if int(st["queries"]) != queries:
            raise DataError(f"stats.json: split {split} has {st['queries']} queries, its annotations {queries}")
        gallery = int(summary.loc[split, "videos"])
        rows[split] = {
            "videos": int(st["videos"]),
            "in gallery": gallery,
            "left out": int(st["videos"]) - gallery,
            "queries": queries,
            "probes dropped": int(sum(st.get("dropped", {}).values())),
        }
    if not rows:  # a dataset without stats.json: the annotated videos in the frame cache are the gallery
        present = present or {}
        rows = {
            split: {
                "videos": int(r["videos"]),
                "in gallery": int(present.get(split, r["videos"])),
                "left out": int(r["videos"]) - int(present.get(split, r["videos"])),
                "queries": int(r["queries"]),
                "probes dropped": 0,
            }
            for split, r in summary.iterrows()
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "split"
    return table


def kind_counts(queries: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Queries per split (rows) and kind (columns)."""
    kind = queries["desc_id"].map(kinds).fillna("(none)")
    table = pd.crosstab(queries["split"], kind).reindex(list(dict.fromkeys(queries["split"])))
    table.columns.name = None
    return table


def saturated(logs: pd.DataFrame) -> int:
    """How many variants have validation R@100 = 100 at every epoch (their val SumR moves with R@1-10 only)."""
    return int(sum((group["val_R100"] >= 100.0).all() for _, group in logs.groupby("variant", sort=False)))


def variant_changes(params_path: str | Path, variants: Sequence[str], reference: str) -> dict[str, str]:
    """What each variant sets (its ``variants`` overrides in params.yaml), then its pyramid's size;
    the reference lists its own values of every key the others change."""
    from propy.config import load_params, read_params

    raw = read_params(params_path).get("variants") or {}
    flat = {
        v: {f"{block}.{key}": value for block, body in (raw.get(v) or {}).items() for key, value in body.items()}
        for v in variants
    }
    keys = list(dict.fromkeys(k for v in variants if v != reference for k in flat[v]))
    out = {}
    for v in variants:
        params = load_params(params_path, variant=v)
        if v == reference:
            changes = {k: getattr(getattr(params, k.split(".")[0]), k.split(".")[1]) for k in keys}
        else:
            changes = flat[v]
        pyramid = params.model.event_pyramid
        text = ", ".join(f"{k} = {value}" for k, value in changes.items())
        out[v] = f"{text} ({_plural(pyramid.num_levels, 'level')}, {_plural(pyramid.num_events, 'event')})".strip()
    return out


def _kind_meaning(kind: str, models: str) -> str:
    """The first line of the docstring of the class in module ``models`` (a dotted name) for ``model.kind``
    (class name = kind, any case, "CLIP" suffix dropped: MeanPoolCLIP is "meanpool"); "" when there is
    none. The module's source is read, not imported: a page need not load torch and open_clip for this."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(models)
    if spec is None or spec.origin is None:
        raise DataError(f"{models}: no such module (it names the classes of the model kinds)")
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        doc = ast.get_docstring(node) if isinstance(node, ast.ClassDef) else None
        if doc and node.name.lower().removesuffix("clip") == kind:
            line = doc.strip().splitlines()[0].rstrip(".")
            return line[0].lower() + line[1:] if line[1:2].islower() else line
    return ""


def variant_glossary(
    params_path: str | Path,
    trained: Sequence[str],
    zero_shot: Sequence[str],
    ablations: dict[str, Sequence[str]],
    models: str,
) -> pd.DataFrame:
    """Every variant of the study (params.yaml's ``study`` lists) with its role (reference,
    ablation, control, zero-shot baseline, or compared method) and what it is, written from
    params.yaml: its overrides and the pyramid they give (``variant_changes``), then the comment on
    its line in ``variants``, else the docstring of its model kind and the comments of the switches
    it turns (a choice list such as "a | b" is not a meaning and is left out). ``models``: the name of
    the module whose classes implement the kinds (``"propy.model.network"``; passed in, so that only the
    page showing the glossary depends on it; its source is read, not imported)."""
    from propy.config import load_params
    from propy.reports.text import INTERACTIONS, NOT_ABLATIONS

    variants = list(dict.fromkeys([*trained, *zero_shot]))
    tables_of = {v: t for t, rows in ablations.items() for v in rows}
    reference = next((v for v in variants if ablations and all(v in rows for rows in ablations.values())), None)
    comments = params_comments(params_path)
    changes = variant_changes(params_path, variants, reference or variants[0])
    raw = {v: (load_params(params_path, variant=v), params_overrides(params_path, v)) for v in variants}
    rows = {}
    for v in variants:
        params, overrides = raw[v]
        if v == reference:
            role = "reference: every ablation is compared with it"
        elif v in zero_shot:
            role = "zero-shot baseline (no training)"
        elif tables_of.get(v) in NOT_ABLATIONS:
            role = NOT_ABLATIONS[tables_of[v]]
        elif v in tables_of:
            role = f"ablation ({tables_of[v].replace('_', ' ')})"
        else:
            role = "compared method"
        notes = [comments[f"variants.{v}"]] if f"variants.{v}" in comments else []
        if not notes:
            kind_changed = "model.kind" in overrides or v == reference
            notes.append(_kind_meaning(params.model.kind, models) if kind_changed else "")
            for key, value in overrides.items():
                if key == "model.interaction":
                    notes.append(INTERACTIONS.get(value, ""))
                elif isinstance(value, (bool, str)) and key != "model.kind" and " | " not in comments.get(key, " | "):
                    notes.append(f"{key.split('.')[-1]}: {comments[key]}")
        if v == reference:
            what = f"params.yaml's model as it stands: {changes[v]}"
        else:
            pyramid = params.model.event_pyramid
            what = ", ".join(f"{k} = {value}" for k, value in overrides.items()) + (
                f" ({_plural(pyramid.num_levels, 'level')}, {_plural(pyramid.num_events, 'event')})"
                if params.model.kind == "propy"
                else ""
            )
        rows[v] = {"role": role, "meaning": "; ".join([what, *filter(None, notes)])}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


def params_overrides(params_path: str | Path, variant: str) -> dict[str, Any]:
    """A variant's overrides in params.yaml's ``variants``, flattened to "block.key" -> value."""
    from propy.config import read_params

    body = (read_params(params_path).get("variants") or {}).get(variant) or {}
    return {f"{block}.{key}": value for block, part in body.items() for key, value in part.items()}


def study_interactions(params_path: str | Path, trained: Sequence[str]) -> dict[str, list[str]]:
    """Each event interaction the study's trained ProPy variants use -> those variants, in the order of
    ``propy.model.masks.INTERACTIONS``: the masks worth drawing (not every interaction defined)."""
    from propy.config import load_params
    from propy.model.masks import INTERACTIONS

    used: dict[str, list[str]] = {}
    for v in trained:
        model = load_params(params_path, variant=v).model
        if model.kind == "propy" and not model.single_event:
            used.setdefault(model.interaction, []).append(v)
    return {name: used[name] for name in INTERACTIONS if name in used}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def chance_sumr(ks: Sequence[int], gallery: int) -> float:
    """SumR of a random ranking of ``gallery`` videos: R@K by chance is K / gallery (100% from K = gallery)."""
    return 100.0 * sum(min(k, gallery) / gallery for k in ks)


def split_gallery(data_root: str | Path, cache_root: str | Path, split: str) -> dict:
    """``propy.data.gallery.split_gallery`` from a notebook's folders: annotated, in the frame cache, left out."""
    from propy.data.gallery import split_gallery as accounting

    return accounting(Layout(Path(data_root), Path(cache_root)), split)


def gallery_size(variant: str, root: str | Path) -> int:
    """Videos in the test gallery the pooled metrics of ``variant`` were computed on."""
    path = Path(root) / f"{variant}.json"
    m = read_json(path, "pool")
    if "num_videos" not in m:
        raise DataError(f"{path}: field 'num_videos' missing")
    return int(m["num_videos"])


def run_names(variant: str, trained: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """The runs of a variant: ``<variant>-s<seed>`` per seed if trained, else ``<variant>``."""
    return [f"{variant}-s{seed}" for seed in seeds] if variant in trained else [variant]


def load_ranks(runs: Sequence[str], root: str | Path) -> pd.DataFrame:
    """Rank of every test query (rows, desc_id) in every run (columns), from ``rankings.jsonl``."""
    columns = {}
    for run in runs:
        rows = read_jsonl(Path(root) / run / "rankings.jsonl", f"evaluate of {run}")
        columns[run] = pd.Series({r["desc_id"]: int(r["rank"]) for r in rows})
    return pd.DataFrame(columns)


def group_intervals(
    variants: Sequence[str],
    groups: dict[str, str],
    order: Sequence[str],
    trained: Sequence[str],
    seeds: Sequence[int],
    runs_root: str | Path,
    ks: Sequence[int],
    samples: int = 1000,
) -> pd.DataFrame:
    """Per variant and group (of ``groups``: desc_id -> group, rows in ``order``): the number of
    queries, mean SumR over the variant's runs and its 95% bootstrap interval over the group's
    queries and the seeds (``propy.evaluation.metrics.bootstrap_sumr``)."""
    rows = []
    for variant in variants:
        ranks = load_ranks(run_names(variant, trained, seeds), runs_root)
        missing = set(ranks.index) - set(groups)
        if missing:
            raise DataError(f"no group for {len(missing)} test queries of {variant} (e.g. {sorted(missing)[0]!r})")
        label = pd.Series(groups).reindex(ranks.index)
        for group in order:
            part = ranks[label == group].to_numpy().T  # [runs, queries]
            if part.size == 0:
                continue
            low, high = bootstrap_sumr(part, ks, samples=samples)
            sumr = 100.0 * float(np.mean([sum((run <= k).mean() for k in ks) for run in part]))
            rows.append(
                {"group": group, "variant": variant, "n": part.shape[1], "SumR": sumr, "low": low, "high": high}
            )
    return pd.DataFrame(rows).set_index("group")


def interval_table(intervals: pd.DataFrame, group_name: str) -> pd.DataFrame:
    """``group_intervals`` as a table: one row per group, its size, then "SumR [lo, hi]" per variant."""
    table = pd.DataFrame(index=pd.Index(list(dict.fromkeys(intervals.index)), name=group_name))
    table["queries"] = intervals.groupby(level=0, sort=False)["n"].first()
    for variant, part in intervals.groupby("variant", sort=False):
        table[variant] = [f"{r.SumR:.1f} [{r.low:.1f}, {r.high:.1f}]" for r in part.itertuples()]
    return table


def ratio_groups(records: Sequence, edges: Sequence[float]) -> dict[str, str]:
    """desc_id -> moment/video length bin (``propy.evaluation.metrics.bin_ratios``, as evaluate bins)."""
    ratios = [(r.ts[1] - r.ts[0]) / r.duration for r in records]
    return dict(zip((r.desc_id for r in records), bin_ratios(np.array(ratios), edges)))


def query_kinds(data_root: str | Path) -> dict[str, str] | None:
    """desc_id -> query kind of the dataset in ``data_root``; None when it has none."""
    return read_query_kinds(Layout(Path(data_root), None).query_kinds)


def probe_table(variants: Sequence[str], root: str | Path) -> pd.DataFrame | None:
    """Own-vs-rival pairwise accuracy per query kind and variant from the pooled metrics' ``probes``
    (``{kind: {"n", "n_rival", "pairwise", "ci": [lo, hi], "R1", ...}}``, percent); None when no
    variant has probes."""
    rows = []
    for name in variants:
        probes = read_json(Path(root) / f"{name}.json", "pool").get("probes") or {}
        for kind, p in probes.items():  # a kind without rivals has no "pairwise"
            low, high = p.get("ci", (np.nan, np.nan))
            rows.append(
                {
                    "kind": kind,
                    "variant": name,
                    "queries": int(p["n"]),
                    "pairs": int(p.get("n_rival", p["n"])),
                    "pairwise": float(p.get("pairwise", np.nan)),
                    "low": float(low),
                    "high": float(high),
                    "R1": float(p.get("R1", np.nan)),
                }
            )
    return pd.DataFrame(rows).set_index("kind") if rows else None


def verdict_table(metrics_root: str | Path) -> pd.DataFrame:
    """The pre-registered tests of ``claims.json`` (written by pool), one row per claim in params.yaml's
    order: claim, primary test, Δ [95% interval], MDE, reachability ceiling (localisation claims:
    variant / against, %), Holm-adjusted p and verdict; a skipped claim says why."""
    result = read_json(Path(metrics_root) / "claims.json", "pool")
    rows = []
    for c in result["claims"]:
        row = {"claim": c["claim"], "primary test": c["primary_test"]}
        if c["verdict"] == "skipped":
            rows.append(
                {**row, "Δ [95% CI]": "", "MDE": "", "ceiling": "", "p (Holm)": "", "verdict": f"skipped: {c['note']}"}
            )
            continue
        ceiling = c.get("ceiling")
        reach = " / ".join(f"{ceiling[v]:.0f}%" for v in (c["variant"], c["against"])) if ceiling else "-"
        rows.append(
            {
                **row,
                "Δ [95% CI]": f"{c['delta']:+.1f} [{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}]",
                "MDE": f"{c['mde']:.1f}",
                "ceiling": reach,
                "p (Holm)": f"{c['p_holm']:.3f}",
                "verdict": c["verdict"],
            }
        )
    return pd.DataFrame(rows, columns=["claim", "primary test", "Δ [95% CI]", "MDE", "ceiling", "p (Holm)", "verdict"])


def projection_table(metrics_root: str | Path) -> pd.DataFrame | None:
    """Each tested claim's MDE now and projected (claims.json's ``projection``): one column per design
    "<queries> queries x <seeds> seeds"; None when no claim carries a projection."""
    result = read_json(Path(metrics_root) / "claims.json", "pool")
    rows = []
    for c in result["claims"]:
        if "projection" not in c:
            continue
        row = {"claim": c["name"], "metric": c["metric"], "queries now": c["n"], "MDE now": round(c["mde"], 1)}
        row.update({f"{p['test_queries']} queries x {p['seeds']} seeds": round(p["mde"], 1) for p in c["projection"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim") if rows else None


def early_best_table(variants: Sequence[str], root: str | Path) -> pd.DataFrame:
    """Trained runs whose best validation epoch lies in the first fifth of training (the pooled
    metrics' ``early_best``, written by pool): variant, run, its best epoch, the epochs planned."""
    rows = []
    for name in variants:
        pooled = read_json(Path(root) / f"{name}.json", "pool")
        flag = pooled.get("early_best")
        if flag is None:
            continue
        epochs = dict(zip(pooled["runs"], pooled["epoch"]))
        rows += [
            {"variant": name, "run": run, "best epoch": epochs[run], "of epochs": flag["epochs"]}
            for run in flag["runs"]
        ]
    return pd.DataFrame(rows, columns=["variant", "run", "best epoch", "of epochs"])


def effects(metrics_root: str | Path, claims: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Every compared variant of ``comparisons.json`` (written by pool): claim, variant, Δ SumR vs the
    reference, its 95% interval and verdict, in the order of ``claims`` (study.ablations + zero_shot)."""
    comparisons = read_json(Path(metrics_root) / "comparisons.json", "pool")
    rows = []
    for claim, variants in claims.items():
        by_variant = {r["variant"]: r for r in comparisons["tables"].get(claim, [])}
        for v in variants:
            if v == comparisons["reference"]:
                continue
            if v not in by_variant:
                raise DataError(f"{metrics_root}/comparisons.json: no comparison for {v} in table {claim!r}")
            r = by_variant[v]
            rows.append(
                {
                    "claim": claim,
                    "variant": v,
                    "delta": float(r["delta_SumR"]),
                    "low": float(r["ci"][0]),
                    "high": float(r["ci"][1]),
                    "verdict": r["verdict"],
                }
            )
    return pd.DataFrame(rows, columns=["claim", "variant", "delta", "low", "high", "verdict"])


def probe_effects(metrics_root: str | Path, claims: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Per compared variant and query kind: the change from the reference in own-vs-rival pairwise
    accuracy and in own-video localisation (points), "Δ [lo, hi] verdict" (``comparisons.json``);
    empty when the benchmark has no rival probes. Each kind isolates one claim (order: adapters,
    composition: depth, context: interaction), so this is where a claim shows or does not."""
    comparisons = read_json(Path(metrics_root) / "comparisons.json", "pool")
    rows = []
    for claim, variants in claims.items():
        by_variant = {r["variant"]: r for r in comparisons["tables"].get(claim, [])}
        for v in variants:
            for kind, entry in by_variant.get(v, {}).get("probes", {}).items():
                cells = {
                    name: f"{e['delta']:+.1f} [{e['ci'][0]:+.1f}, {e['ci'][1]:+.1f}]"
                    + (f" (MDE {e['mde']:.1f})" if "mde" in e else "")
                    + f" {e['verdict']}"
                    for name, e in entry.items()
                }
                rows.append(
                    {
                        "claim": claim,
                        "variant": v,
                        "kind": kind,
                        "Δ pairwise": cells.get("pairwise", ""),
                        "Δ localisation": cells.get("loc", ""),
                    }
                )
    return pd.DataFrame(rows, columns=["claim", "variant", "kind", "Δ pairwise", "Δ localisation"])


def vcmr_reach(records: Sequence, num_frames: int, thresholds: Sequence[float]) -> pd.DataFrame:
    """Share (%) of test queries a proposal *can* match at each IoU threshold when the proposal is
    the whole video (mean-pool's one event: IoU = moment/video) or one sampled frame (max-frame's
    events: IoU <= (1/Nf) / (moment/video), so it needs moment/video <= 1 / (t Nf))."""
    ratios = np.array([(r.ts[1] - r.ts[0]) / r.duration for r in records])
    table = pd.DataFrame(
        {
            "whole-video proposal": [100.0 * float((ratios >= t).mean()) for t in thresholds],
            "one-frame proposal": [100.0 * float((ratios <= 1.0 / (t * num_frames)).mean()) for t in thresholds],
        },
        index=pd.Index([f"IoU{t:g}" for t in thresholds], name="IoU threshold"),
    )
    return table


# --------------------------------------------------------------------------- qualitative


def _words(text: str) -> list[str]:
    return text.lower().replace(",", " ").split()


def matching_event(query: str, texts: Sequence[str]) -> str:
    """The text among ``texts`` (a video's event descriptions) sharing most words with ``query``."""
    q = set(_words(query))
    return max(texts, key=lambda t: (len(q & set(_words(t))) / len(q | set(_words(t))), t)) if texts else ""


def word_difference(query: str, text: str) -> tuple[list[str], list[str]]:
    """(words of ``query`` missing from ``text``, words of ``text`` missing from ``query``)."""
    a, b = _words(query), _words(text)
    return [w for w in a if w not in b], [w for w in b if w not in a]


def annotate_examples(examples: list[dict], texts: dict[str, str], events_by_video: dict[str, list[str]]) -> list[dict]:
    """Each example plus its "query" text and, when the rank-1 video is not the true one, that video's
    best-matching event ("rival_text"), the words that differ ("rival_words": query's, rival's) and
    "rival_differs": whether exactly one word differs each way (a hard negative)."""
    out = []
    for e in examples:
        e = {**e, "query": texts.get(e["desc_id"], "")}
        if e["top10"] and e["top10"][0] != e["vid_name"]:
            e["rival_text"] = matching_event(e["query"], events_by_video.get(e["top10"][0], []))
            e["rival_words"] = word_difference(e["query"], e["rival_text"])
            e["rival_differs"] = tuple(map(len, e["rival_words"])) == (1, 1)
        out.append(e)
    return out


def pick_examples(rankings: list[dict], kinds: dict[str, str] | None) -> list[dict]:
    """Per query kind (one group when there are none), the best and the worst ranked query; ties go
    to the first in desc_id order. Each: the rankings row plus "kind" and "pick"."""
    groups: dict[str, list[dict]] = {}
    for row in sorted(rankings, key=lambda r: r["desc_id"]):
        groups.setdefault(kinds[row["desc_id"]] if kinds else "all", []).append(row)
    picked = []
    for kind in sorted(groups):
        rows = groups[kind]
        best = min(rows, key=lambda r: r["rank"])
        worst = max(rows, key=lambda r: r["rank"])
        picked.append({**best, "kind": kind, "pick": "best"})
        if worst is not best:
            picked.append({**worst, "kind": kind, "pick": "worst"})
    return picked


def top_videos(example: dict, events_by_video: dict[str, list[str]], query: str, k: int) -> pd.DataFrame:
    """The top-``k`` videos of one example with the text of each one's event that best matches the
    query, the true video marked."""
    rows = []
    for rank, vid in enumerate(example["top10"][:k], 1):
        rows.append(
            {
                "rank": rank,
                "video": vid + (" (true)" if vid == example["vid_name"] else ""),
                "its best-matching event": matching_event(query, events_by_video.get(vid, [])),
            }
        )
    return pd.DataFrame(rows).set_index("rank")
