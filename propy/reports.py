"""What the report notebooks call: load stage outputs, build tables, draw and save figures.

The notebooks stay thin (parameters, then one call per table or figure) so their
logic is tested here. Loaders raise DataError naming the missing file and the stage
that writes it; every table is saved as Markdown and CSV, every figure as PNG, atomically.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from propy.errors import DataError
from propy import io
from propy.io import atomic_path, atomic_write_text
from propy.metrics import bootstrap_sumr

RECALLS = ("R1", "R5", "R10", "R100", "SumR")


# --------------------------------------------------------------------------- loading

def _missing(written_by: str) -> str:
    return f"missing input (written by {written_by}; run `dvc repro` first)"


def read_json(path: str | Path, written_by: str = "an earlier stage") -> Any:
    """Parsed JSON; DataError naming the file (and who writes it) when missing or invalid."""
    return io.read_json(path, _missing(written_by))


def read_jsonl(path: str | Path, written_by: str = "an earlier stage") -> list[dict]:
    return [obj for _, obj in io.iter_jsonl(path, _missing(written_by))]


def load_metrics(variants: Sequence[str], root: str | Path = "metrics") -> pd.DataFrame:
    """One row per variant (index, in the given order): kind, recalls, MedR, MeanR, unnormalised SumR."""
    rows = []
    for name in variants:
        m = read_json(Path(root) / f"{name}.json", f"evaluate@{name}")
        row = {"variant": name, "kind": m.get("kind", "")}
        for key in (*RECALLS, "MedR", "MeanR"):
            if key not in m:
                raise DataError(f"{Path(root) / f'{name}.json'}: field '{key}' missing")
            row[key] = float(m[key])
        row["SumR (unnormalized)"] = float(m.get("unnormalized", {}).get("SumR", np.nan))
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def load_logs(variants: Sequence[str], root: str | Path = "logs/train") -> pd.DataFrame:
    """Long table of the per-epoch training logs: one row per (variant, epoch)."""
    frames = []
    for name in variants:
        entries = read_json(Path(root) / f"{name}.json", f"train@{name}")
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{Path(root) / f'{name}.json'}: expected a non-empty list of epochs")
        frames.append(pd.DataFrame(entries).assign(variant=name))
    return pd.concat(frames, ignore_index=True)


def load_breakdown(variants: Sequence[str], by: str, root: str | Path = "results") -> pd.DataFrame:
    """Long table of ``breakdown.json[by]`` ("by_ratio" or "by_kind") for each variant."""
    frames = []
    for name in variants:
        path = Path(root) / name / "breakdown.json"
        data = read_json(path, f"evaluate@{name}")
        if by not in data:
            raise DataError(f"{path}: field '{by}' missing")
        frames.append(pd.DataFrame(data[by]).assign(variant=name))
    return pd.concat(frames, ignore_index=True)


def load_events(variant: str, root: str | Path = "results") -> dict[str, np.ndarray]:
    path = Path(root) / variant / "events.npz"
    if not path.is_file():
        raise DataError(f"{path}: missing input (written by evaluate@{variant}; run `dvc repro` first)")
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


# --------------------------------------------------------------------------- tables

def metric_table(metrics: pd.DataFrame, variants: Sequence[str],
                 columns: Sequence[str] = RECALLS) -> pd.DataFrame:
    """The rows ``variants`` (in that order) and ``columns`` of ``load_metrics``' table."""
    missing = [v for v in variants if v not in metrics.index]
    if missing:
        raise DataError(f"no metrics for variant(s) {', '.join(missing)}")
    return metrics.loc[list(variants), list(columns)]


def load_ranks(variant: str, root: str | Path = "results") -> pd.Series:
    """Rank of the true video per query (index: desc_id) from ``rankings.jsonl``."""
    rows = read_jsonl(Path(root) / variant / "rankings.jsonl", f"evaluate@{variant}")
    return pd.Series({r["desc_id"]: int(r["rank"]) for r in rows}, name=variant)


def ablation_table(metrics: pd.DataFrame, variants: Sequence[str], reference: str,
                   results_root: str | Path = "results", samples: int = 1000) -> pd.DataFrame:
    """``metric_table`` rows plus each variant's SumR change from ``reference`` and its paired
    95% bootstrap interval over test queries: a change whose interval holds 0 is within what
    the test set's size alone can produce."""
    table = metric_table(metrics, variants).copy()
    ks = [int(c[1:]) for c in RECALLS if c != "SumR"]
    base = load_ranks(reference, results_root)
    deltas, intervals = [], []
    for name in variants:
        ranks = load_ranks(name, results_root)
        if set(ranks.index) != set(base.index):
            raise DataError(f"{Path(results_root) / name / 'rankings.jsonl'}: not the queries of {reference}")
        low, high = bootstrap_sumr(ranks.loc[base.index].to_numpy(), ks, base.to_numpy(), samples=samples)
        deltas.append(table.loc[name, "SumR"] - table.loc[reference, "SumR"])
        intervals.append(f"[{low:+.1f}, {high:+.1f}]")
    table[f"ΔSumR vs {reference}"] = deltas
    table["95% CI of Δ"] = intervals
    return table


def breakdown_table(breakdown: pd.DataFrame, group: str, metric: str = "SumR") -> pd.DataFrame:
    """Pivot a breakdown: rows = bins/kinds (first-seen order), columns = variants, values = ``metric``."""
    order = list(dict.fromkeys(breakdown[group]))
    table = breakdown.pivot(index=group, columns="variant", values=metric)
    return table.loc[order, list(dict.fromkeys(breakdown["variant"]))]


def vcmr_table(variants: Sequence[str], root: str | Path = "metrics") -> pd.DataFrame:
    """Weakly-supervised VCMR recalls: rows = variants, columns = "IoU0.5 R1", ..."""
    rows = {}
    for name in variants:
        vcmr = read_json(Path(root) / f"{name}.json", f"evaluate@{name}").get("vcmr", {})
        rows[name] = {f"{iou} {k}": v for iou, recalls in vcmr.items() for k, v in recalls.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def probe_table(variants: Sequence[str], root: str | Path = "metrics") -> pd.DataFrame:
    """Own-vs-rival pairwise accuracy (%, chance 50) with its 95% bootstrap interval: rows = variants,
    columns = query kinds, cells "87.5 [80.1, 93.0]"; empty when the metrics carry no probes."""
    rows = {}
    for name in variants:
        probes = read_json(Path(root) / f"{name}.json", f"evaluate@{name}").get("probes", {})
        rows[name] = {kind: f"{p['pairwise']:.1f} [{p['ci'][0]:.1f}, {p['ci'][1]:.1f}]"
                      for kind, p in probes.items() if "pairwise" in p}
    return pd.DataFrame.from_dict(rows, orient="index")


def separability_table(variants: Sequence[str], root: str | Path = "metrics") -> pd.DataFrame:
    """Mean cosine of rival query pairs per kind (``all_queries``: of every query pair, for scale), for
    the frozen text tower (first row) and each variant's trained one; lower separates better."""
    rows: dict[str, dict] = {}
    for name in variants:
        sep = read_json(Path(root) / f"{name}.json", f"evaluate@{name}").get("text_separability")
        if sep:
            rows.setdefault("frozen CLIP", sep["frozen"])
            rows[name] = sep["trained"]
    return pd.DataFrame.from_dict(rows, orient="index")


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


# --------------------------------------------------------------------------- figures

def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path) -> Path:
    """Save ``fig`` as ``<name>.png`` atomically; the figure stays open for the inline backend."""
    path = Path(figures_dir) / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_curves(logs: pd.DataFrame, y: str, ylabel: str, title: str) -> plt.Figure:
    """One line per variant of ``logs[y]`` against the epoch."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, group in logs.groupby("variant", sort=False):
        ax.plot(group["epoch"], group[y], marker="o", label=name)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    return fig


def plot_bars(table: pd.DataFrame, title: str, ylabel: str = "recall (%)") -> plt.Figure:
    """Grouped bars: one group per row of ``table``, one bar per column."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(table) * np.sqrt(len(table.columns))), 4))
    table.plot.bar(ax=ax, rot=30, width=0.8)
    ax.set(title=title, xlabel=table.index.name or "", ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # headroom: the legend row sits above the bars
    ax.legend(fontsize="small", ncol=min(5, len(table.columns)), loc="upper center")
    return fig


def plot_histogram(values: Sequence[float], bins: int | Sequence[float], title: str, xlabel: str,
                   ylabel: str = "count") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.asarray(values, dtype=float), bins=bins, color="tab:blue", edgecolor="white")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig


def frame_strip(frames: np.ndarray, times: Sequence[float], duration: float,
                events: Sequence[tuple[float, float]], title: str) -> plt.Figure:
    """Sampled frames in a row above a time axis with the events' spans and the frame times."""
    n = len(frames)
    fig = plt.figure(figsize=(1.4 * n, 3.2))
    grid = fig.add_gridspec(2, n, height_ratios=[2, 1])
    for i, (frame, t) in enumerate(zip(frames, times)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(frame)
        ax.set_title(f"{t:.1f} s", fontsize="small")
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    for j, (start, end) in enumerate(events):
        ax.axvspan(start, end, ymin=0.2, ymax=0.8, color=f"C{j % 10}", alpha=0.5)
        ax.axvline(start, color="black", lw=0.8)
    ax.vlines(times, 0, 1, color="red", lw=1, label="sampled frames")
    ax.set(xlim=(0, duration), ylim=(0, 1), xlabel="time (s)", yticks=[])
    ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    return fig


def event_timeline(scores: np.ndarray, proposals: np.ndarray, duration: float,
                   moment: tuple[float, float], title: str) -> plt.Figure:
    """Each event as a horizontal bar over its time span at the height of its score."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.axvspan(*moment, color="tab:green", alpha=0.25, label="true moment")
    spans = np.asarray(proposals, dtype=float) * duration
    best = int(np.argmax(scores))
    for j, ((start, end), score) in enumerate(zip(spans, scores)):
        ax.hlines(score, start, end, color="tab:red" if j == best else "tab:blue", lw=3 if j == best else 1.5)
    ax.plot([], [], color="tab:blue", label="event (span, score)")
    ax.plot([], [], color="tab:red", lw=3, label="best event")
    ax.set(title=title, xlabel="time (s)", ylabel="cosine similarity", xlim=(0, duration))
    ax.legend(fontsize="small", loc="lower right")
    return fig


def plot_masks(masks: dict[str, np.ndarray], num_events: int, title: str) -> plt.Figure:
    """Allowed (dark) / blocked (light) event -> node attention, one panel per interaction."""
    fig, axes = plt.subplots(1, len(masks), figsize=(3.2 * len(masks), 3.2), squeeze=False, layout="constrained")
    for ax, (name, mask) in zip(axes[0], masks.items()):
        ax.imshow(mask, cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
        ax.axvline(num_events - 0.5, color="tab:red", lw=1)
        ax.set(title=name, xlabel="key node (events | frames)")
    axes[0, 0].set_ylabel("query event")
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- data report

def annotation_stats(records_by_split: dict[str, list]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-split summary table, per-query table with split, duration and moment/video ratio)."""
    queries = pd.DataFrame(
        [{"split": split, "vid_name": r.vid_name, "duration": r.duration,
          "ratio": (r.ts[1] - r.ts[0]) / r.duration}
         for split, records in records_by_split.items() for r in records]
    )
    if queries.empty:
        raise DataError("no annotation records: every split is empty")
    videos = queries.drop_duplicates(["split", "vid_name"])
    summary = pd.DataFrame({
        "videos": videos.groupby("split", sort=False).size(),
        "queries": queries.groupby("split", sort=False).size(),
        "mean duration (s)": videos.groupby("split", sort=False)["duration"].mean(),
        "mean moment/video": queries.groupby("split", sort=False)["ratio"].mean(),
    })
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


def video_events(data_root: str | Path, vid_name: str, records: Sequence) -> list[tuple[float, float]]:
    """The video's event spans (s): synthetic ``captions.jsonl`` if present, else its query moments."""
    captions = Path(data_root) / "captions.jsonl"
    if captions.is_file():
        spans = {(c["start"], c["end"]) for c in read_jsonl(captions, "synth") if c["vid_name"] == vid_name}
    else:
        spans = {tuple(r.ts) for r in records if r.vid_name == vid_name}
    return sorted(spans)


def training_summary(logs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: epochs run, final loss, best validation SumR and its epoch, training time."""
    rows = {}
    for name, group in logs.groupby("variant", sort=False):
        best = group.loc[group["val_SumR"].idxmax()]
        rows[name] = {"epochs": len(group), "final loss": float(group["loss"].iloc[-1]),
                      "best val SumR": float(best["val_SumR"]), "best epoch": int(best["epoch"]),
                      "time (s)": float(group["seconds"].sum())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table


def top_k_table(rankings: list[dict], texts: dict[str, str], count: int, k: int) -> pd.DataFrame:
    """The first ``count`` queries: text, true video, its rank and the top-``k`` videos (true one starred)."""
    rows = []
    for entry in rankings[:count]:
        top = [f"*{v}*" if v == entry["vid_name"] else v for v in entry["top10"][:k]]
        rows.append({"desc_id": entry["desc_id"], "query": texts.get(entry["desc_id"], ""),
                     "true video": entry["vid_name"], "rank": entry["rank"], f"top-{k}": ", ".join(top)})
    return pd.DataFrame(rows).set_index("desc_id")


def links_html(names: Sequence[str]) -> str:
    """An HTML list linking ``<name>.html`` (the reports sit next to index.html)."""
    items = "".join(f'<li><a href="{n}.html">{n}</a></li>' for n in names)
    return f"<ul>{items}</ul>"
