"""The report figures: one function per kind of figure, saved as SVG and 300-dpi PNG.

Series are told apart by colour *and* marker (and line style after the first ten), so
twelve and more curves stay distinct; legends sit outside the axes, never over data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from propy.runtime.files import atomic_path

DPI = 300
FORMATS = ("svg", "png")
# tab20's ten strong colours, then its ten light ones: neighbours in a legend never share a hue.
COLOURS = [plt.get_cmap("tab20")(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
VERDICT_COLOURS = {"gain": "tab:green", "loss": "tab:red", "no difference": "tab:gray"}


def series_style(i: int) -> dict:
    """Colour, marker and line style of series ``i``: unique for the first 120 series."""
    return {
        "color": COLOURS[i % len(COLOURS)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": ("-", "--", ":", "-.")[(i // len(COLOURS)) % 4],
    }


def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path) -> list[Path]:
    """Save ``fig`` as ``<name>.svg`` and ``<name>.png`` (300 dpi), atomically; the figure stays open
    for the inline backend. Returns both paths."""
    paths = []
    for fmt in FORMATS:
        path = Path(figures_dir) / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
        paths.append(path)
    return paths


def show(fig: plt.Figure) -> None:
    """Display ``fig`` here (inside a loop, next to its example) and close it."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _legend_outside(ax: plt.Axes, title: str | None = None) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title=title, frameon=False)


def plot_curves(logs: pd.DataFrame, y: str, ylabel: str, title: str) -> plt.Figure:
    """One line per variant of ``logs[y]`` against the epoch; the legend right of the axes."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (name, group) in enumerate(logs.groupby("variant", sort=False)):
        ax.plot(group["epoch"], group[y], label=name, markersize=4, **series_style(i))
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    _legend_outside(ax, "variant")
    return fig


def plot_seed_curves(
    logs: pd.DataFrame,
    runs: pd.DataFrame,
    evaluated: dict[str, Sequence[int]],
    y: str,
    ylabel: str,
    title: str,
    columns: int = 3,
) -> plt.Figure:
    """One panel per variant (shared axes): each seed's ``runs[y]`` as a thin line, the seed mean
    (``logs``) thick on top, and each seed's evaluated epoch (``evaluated``: {variant: epoch per seed,
    in the order the seeds appear in ``runs``}) as a hollow circle on its own curve."""
    names = list(dict.fromkeys(logs["variant"]))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(3.2 * columns, 0.6 + 2.3 * rows),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for i, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        colour = series_style(i)["color"]
        part = runs[runs["variant"] == name]
        for j, seed in enumerate(dict.fromkeys(part["seed"])):
            run = part[part["seed"] == seed]
            ax.plot(run["epoch"], run[y], color=colour, lw=0.8, alpha=0.5, label="one seed" if j == 0 else None)
            at = run[run["epoch"] == evaluated[name][j]]
            ax.plot(
                at["epoch"],
                at[y],
                linestyle="none",
                marker="o",
                markersize=7,
                markerfacecolor="none",
                markeredgecolor="black",
                label="evaluated epoch" if j == 0 else None,
            )
        mean = logs[logs["variant"] == name]
        ax.plot(mean["epoch"], mean[y], color=colour, lw=2.2, label="mean over seeds")
        ax.set_title(name, fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    axes.flat[0].legend(fontsize="x-small", frameon=False)
    fig.suptitle(title)
    return fig


def plot_intervals(
    table: pd.DataFrame,
    value: str,
    low: str,
    high: str,
    title: str,
    xlabel: str,
    series: str | None = None,
    chance: tuple[float, str] | None = None,
) -> plt.Figure:
    """Horizontal dot-and-interval plot: one row per index entry of ``table``; with ``series``
    (a column), one offset dot per series value in each row, told apart by colour and marker; with
    ``chance`` (value, label), a dashed line where a random ranking or guess would be."""
    rows = list(dict.fromkeys(table.index))
    names = list(dict.fromkeys(table[series])) if series else [None]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.35 * len(rows) * max(1, len(names) / 2)))
    step = 0.8 / len(names)
    for i, name in enumerate(names):
        part = table if name is None else table[table[series] == name]
        y = np.array([rows.index(r) for r in part.index]) + (i - (len(names) - 1) / 2) * step
        err = np.vstack([part[value] - part[low], part[high] - part[value]])
        style = series_style(i)
        ax.errorbar(
            part[value],
            y,
            xerr=err,
            fmt=style["marker"],
            color=style["color"],
            capsize=3,
            label=name if name is not None else None,
        )
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    if chance is not None:
        ax.axvline(chance[0], color="black", lw=1, linestyle="--", label=chance[1])
    if series or chance is not None:
        _legend_outside(ax, series)
    return fig


def plot_values(values: pd.Series, title: str, xlabel: str) -> plt.Figure:
    """One horizontal bar per entry of ``values`` (its index labels the rows), the value written at its end."""
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.35 * len(values)))
    bars = ax.barh([str(i) for i in values.index], values.to_numpy(), color=COLOURS[0])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize="small")
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, xlim=(0, values.max() * 1.2))
    return fig


def plot_effects(effects: pd.DataFrame, reference: str, title: str) -> plt.Figure:
    """Forest plot of ``effects`` (columns claim, variant, delta, low, high, verdict): one row per
    variant, grouped under its claim, the 95% interval as a bar, coloured by verdict; 0 marked."""
    claims = list(dict.fromkeys(effects["claim"]))
    labels, ys, y = [], [], 0
    for claim in claims:
        labels.append((y, f"{claim}"))
        y += 1
        for _ in range((effects["claim"] == claim).sum()):
            ys.append(y)
            y += 1
        y += 0.5
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.32 * y))
    for row, y_row in zip(effects.itertuples(), ys):
        ax.errorbar(
            row.delta,
            y_row,
            xerr=[[row.delta - row.low], [row.high - row.delta]],
            fmt="o",
            color=VERDICT_COLOURS[row.verdict],
            capsize=3,
            lw=1.5,
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, list(effects["variant"]))
    for y_head, claim in labels:
        ax.text(0.0, y_head, claim, transform=ax.get_yaxis_transform(), ha="left", va="center", fontweight="bold")
    ax.set_ylim(y - 0.5, -0.8)
    ax.set(title=title, xlabel=f"Δ SumR vs {reference} (95% interval over queries and seeds)")
    ax.grid(axis="x", alpha=0.3)
    for verdict, colour in VERDICT_COLOURS.items():
        ax.scatter([], [], color=colour, label=verdict)
    _legend_outside(ax, "verdict")
    return fig


def plot_histogram(
    values: Sequence[float], bins: int | Sequence[float], title: str, xlabel: str, ylabel: str = "count"
) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.asarray(values, dtype=float), bins=bins, color=COLOURS[0], edgecolor="white")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig


def _frames_on_time_axis(ax: plt.Axes, frames: np.ndarray, times: Sequence[float], duration: float) -> None:
    """Each frame drawn over its own segment of the time axis (centred on its time, as wide as the step
    between sampled times: the sampler may leave the video's last frames out), so the frames line up
    with the axis ticks and with the tracks above; time labelled."""
    steps = np.diff(np.asarray(times, dtype=float))
    width = float(steps[steps > 0].min()) if (steps > 0).any() else duration / len(frames)
    for frame, t in zip(frames, times, strict=True):
        ax.imshow(frame, extent=(t - width / 2 + 0.02 * width, t + width / 2 - 0.02 * width, 0, 1), aspect="auto")
    ax.set(xlim=(0, duration), ylim=(0, 1), xlabel="time (s)")
    ax.set_yticks([])


def _strip_height(frames: np.ndarray, width_in: float) -> float:
    """Height (inches) of a row of ``frames`` side by side across ``width_in`` keeping their aspect."""
    n, h, w = frames.shape[:3]
    return width_in / n * h / w


def frame_strip(
    frames: np.ndarray,
    times: Sequence[float],
    duration: float,
    captions: Sequence[tuple[float, float, str]],
    queries: Sequence[tuple[float, float, str]],
    title: str,
) -> plt.Figure:
    """Two tracks over a time axis, the events the video was built from (caption spans, numbered E1..)
    and the moments of its test queries (Q1..), above the frames the model samples, each drawn over
    its own time; the numbered captions and queries are written out underneath."""
    width, columns = 10.0, 3
    frames_h = _strip_height(frames, width * 0.8)
    events = [f"E{j + 1}  {a:.1f}-{b:.1f} s: {text}" for j, (a, b, text) in enumerate(captions)]
    asked = [f"Q{j + 1}  {a:.1f}-{b:.1f} s: \u201c{text}\u201d" for j, (a, b, text) in enumerate(queries)]
    per_column = -(-len(events) // columns)
    text_h = 0.16 * (per_column + len(asked)) + 0.2
    fig = plt.figure(figsize=(width, 1.6 + frames_h + 0.5 + text_h))
    grid = fig.add_gridspec(3, 1, height_ratios=[1.6, frames_h, text_h], hspace=0.08, left=0.1, right=0.9)
    ax = fig.add_subplot(grid[0])
    for j, (start, end, _) in enumerate(captions):
        ax.barh(1, end - start, left=start, height=0.8, color=COLOURS[10 + j % 10], edgecolor="black", lw=0.5)
        ax.text((start + end) / 2, 1, f"E{j + 1}", ha="center", va="center", fontsize=7)
    rows = _rows_without_overlap(np.array([[a, b] for a, b, _ in queries]).reshape(-1, 2))
    depth = max(rows, default=0) + 1
    for j, ((start, end, _), row) in enumerate(zip(queries, rows, strict=True)):
        y = 0.4 - 0.8 * (row + 0.5) / depth
        ax.barh(y, end - start, left=start, height=0.7 / depth, color=COLOURS[j % 10])
        ax.text((start + end) / 2, y, f"Q{j + 1}", ha="center", va="center", fontsize=7, color="white")
    ax.vlines(times, -0.5, 1.5, color="black", lw=0.6, linestyles=":")
    ax.set(xlim=(0, duration), ylim=(-0.5, 1.5), title=title)
    ax.set_yticks([0, 1], ["queries", "events"])
    ax.tick_params(labelbottom=False)
    _frames_on_time_axis(fig.add_subplot(grid[1], sharex=ax), frames, times, duration)
    note = fig.add_subplot(grid[2])
    note.axis("off")
    top = 1.0 - 0.5 / (text_h + 0.5)  # below the time axis' label
    for c in range(columns):
        note.text(
            c / columns,
            top,
            "\n".join(events[c * per_column : (c + 1) * per_column]),
            va="top",
            ha="left",
            fontsize=7,
            transform=note.transAxes,
        )
    note.text(0, 0, "\n".join(asked), va="bottom", ha="left", fontsize=8, transform=note.transAxes)
    return fig


def _rows_without_overlap(spans: np.ndarray) -> list[int]:
    """A row per span so that spans in one row do not overlap (greedy, left to right)."""
    ends: list[float] = []
    rows = []
    for start, end in spans:
        row = next((i for i, e in enumerate(ends) if e <= start + 1e-9), len(ends))
        if row == len(ends):
            ends.append(end)
        else:
            ends[row] = end
        rows.append(row)
    return rows


def event_timeline(
    scores: np.ndarray,
    proposals: np.ndarray,
    levels: Sequence[int],
    duration: float,
    moment: tuple[float, float],
    frames: np.ndarray,
    times: Sequence[float],
    title: str,
) -> plt.Figure:
    """Every event of the true video as a box over its time span, one band per pyramid level (top
    level first, half-overlapping events on two rows), coloured by its cosine with the query; the
    best event outlined in red, the true moment shaded green, the sampled frames underneath on the same
    time axis."""
    width = 10.0
    frames_h = _strip_height(frames, width * 0.75)
    fig = plt.figure(figsize=(width, 2.6 + frames_h))
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, frames_h], width_ratios=[1, 0.02], hspace=0.08, wspace=0.02)
    ax = fig.add_subplot(grid[0, 0])
    spans = np.asarray(proposals, dtype=float) * duration
    scores = np.asarray(scores, dtype=float)
    norm = plt.Normalize(scores.min(), scores.max() if scores.max() > scores.min() else scores.min() + 1e-6)
    cmap = plt.get_cmap("viridis")
    best = int(np.argmax(scores))
    y, ticks = 0.0, []
    levels = np.asarray(levels)
    for level in sorted(set(levels.tolist()), reverse=True):
        ids = np.flatnonzero(levels == level)
        rows = _rows_without_overlap(spans[ids])
        height = 0.8 / (max(rows) + 1)
        for i, row in zip(ids, rows):
            start, end = spans[i]
            ax.barh(
                y + row * height,
                end - start,
                left=start,
                height=height * 0.9,
                align="edge",
                color=cmap(norm(scores[i])),
                edgecolor="tab:red" if i == best else "white",
                lw=2 if i == best else 0.5,
            )
        ticks.append((y + 0.4, f"level {level}"))
        y += 1
    ax.axvspan(*moment, color="tab:green", alpha=0.2, label="true moment")
    ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set(title=title, xlim=(0, duration), ylim=(y, -0.1))
    ax.tick_params(labelbottom=False)
    fig.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=fig.add_subplot(grid[0, 1]), label="cosine with the query"
    )
    handles = [
        Patch(color="tab:green", alpha=0.2, label="true moment"),
        Patch(facecolor="white", edgecolor="tab:red", lw=2, label="best event"),
    ]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.08), ncol=2, fontsize="small", frameon=False)
    _frames_on_time_axis(fig.add_subplot(grid[1, 0], sharex=ax), frames, times, duration)
    return fig


def plot_masks(masks: dict[str, np.ndarray], level_counts: Sequence[int], num_frames: int, title: str) -> plt.Figure:
    """Allowed (dark) / blocked (light) event -> node attention, one panel per interaction, with
    separators between pyramid levels (``level_counts`` top first) and before the frames."""
    rows, cols = next(iter(masks.values())).shape
    width = max(3.2, 9.0 / len(masks))  # the panel's height follows the mask's shape: no blank band
    fig, axes = plt.subplots(
        1, len(masks), figsize=(width * len(masks), width * rows / cols + 0.9), squeeze=False, layout="constrained"
    )
    bounds = np.cumsum(level_counts)[:-1] - 0.5
    num_events = int(sum(level_counts))
    for ax, (name, mask) in zip(axes[0], masks.items()):
        ax.imshow(mask, cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
        for b in bounds:
            ax.axhline(b, color="tab:blue", lw=0.6)
            ax.axvline(b, color="tab:blue", lw=0.6)
        ax.axvline(num_events - 0.5, color="tab:red", lw=1.2)
        ax.set(title=name, xlabel=f"key: {num_events} events | {num_frames} frames")
    axes[0, 0].set_ylabel("query event (top level first)")
    fig.suptitle(title)
    return fig
