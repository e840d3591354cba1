"""propy.reports on small hand-made stage outputs, and propy.render executing real notebooks."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the unit tests draw without a display; notebooks keep their inline backend

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from propy import reports
from propy.cli import main
from propy.config import Layout
from propy.data.annotations import Record
from propy.errors import DataError
from propy.masks import INTERACTIONS, event_node_mask
from propy.pyramid import build_pyramid
from propy.render import render

REPO = Path(__file__).resolve().parents[1]


def write_metrics(root: Path, name: str, sumr: float, kind: str = "propy") -> None:
    """A metrics file in the contract's shape whose recalls add up to ``sumr``."""
    r = [sumr * f for f in (0.1, 0.2, 0.3, 0.4)]
    metrics = {"variant": name, "kind": kind, "split": "test", "epoch": 1,
               "R1": r[0], "R5": r[1], "R10": r[2], "R100": r[3], "SumR": sumr, "MedR": 3.0, "MeanR": 4.5,
               "unnormalized": {"R1": 1.0, "R5": 2.0, "R10": 3.0, "R100": 4.0, "SumR": 10.0},
               "vcmr": {"IoU0.5": {"R1": 5.0, "R10": 15.0, "R100": 30.0}}}
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.json").write_text(json.dumps(metrics))


def write_breakdown(root: Path, name: str, offset: float) -> None:
    rec = {"n": 4, "R1": 1.0, "R5": 2.0, "R10": 3.0, "R100": 4.0}
    data = {"by_ratio": [{"bin": "<0.1", **rec, "SumR": 10 + offset}, {"bin": ">=0.4", **rec, "SumR": 20 + offset}],
            "by_kind": [{"kind": "single", **rec, "SumR": 30 + offset}, {"kind": "multi", **rec, "SumR": 40 + offset}]}
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "breakdown.json").write_text(json.dumps(data))


def test_load_metrics_keeps_order_and_values(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    write_metrics(tmp_path, "zs_maxframe", 100.0, kind="maxframe")
    table = reports.load_metrics(["zs_maxframe", "full"], tmp_path)
    assert list(table.index) == ["zs_maxframe", "full"]
    assert table.loc["full", "R10"] == pytest.approx(60.0)
    assert table.loc["zs_maxframe", "kind"] == "maxframe"
    assert table.loc["full", "SumR (unnormalized)"] == 10.0


def test_missing_metrics_name_the_file_and_the_stage(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    with pytest.raises(DataError, match=r"depth1\.json: missing input \(written by pool"):
        reports.load_metrics(["full", "depth1"], tmp_path)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "full.json"
    path.write_text('{"R1": 1.0,\n "R5": }\n')
    with pytest.raises(DataError, match=r"full\.json: line 2: not valid JSON"):
        reports.read_json(path)


def test_metric_table_rejects_unknown_variant(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    table = reports.load_metrics(["full"], tmp_path)
    with pytest.raises(DataError, match="no metrics for variant.*ia_none"):
        reports.metric_table(table, ["full", "ia_none"])


def test_markdown_table_hand_worked():
    table = pd.DataFrame({"R1": [12.345, float("nan")], "kind": ["propy", "a|b"]},
                         index=pd.Index(["full", "zs"], name="variant"))
    assert reports.to_markdown(table) == (
        "| variant | R1 | kind |\n"
        "|---|---|---|\n"
        "| full | 12.3 | propy |\n"
        "| zs | - | a\\|b |\n"
    )


def test_save_table_writes_md_and_csv_atomically(tmp_path):
    table = pd.DataFrame({"SumR": [150.25, 90.5]}, index=pd.Index(["full", "ia_none"], name="variant"))
    md, csv = reports.save_table(table, "depth", tmp_path / "tables")
    assert md.read_text().splitlines()[2] == "| full | 150.2 |"  # rounded half to even by format
    back = pd.read_csv(csv, index_col="variant")
    assert back.loc["ia_none", "SumR"] == 90.5
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["depth.csv", "depth.md"]


def test_breakdown_table_pivots_in_first_seen_order(tmp_path):
    write_breakdown(tmp_path, "zs_maxframe", 0.0)
    write_breakdown(tmp_path, "full", 5.0)
    long = reports.load_breakdown(["zs_maxframe", "full"], "by_ratio", tmp_path)
    table = reports.breakdown_table(long, "bin")
    assert list(table.index) == ["<0.1", ">=0.4"]
    assert list(table.columns) == ["zs_maxframe", "full"]
    assert table.loc[">=0.4", "full"] == 25.0
    with pytest.raises(DataError, match="field 'by_span' missing"):
        reports.load_breakdown(["full"], "by_span", tmp_path)


def test_training_summary_finds_the_best_epoch(tmp_path):
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    entries = [{"epoch": e, "step": 10 * e, "loss": 3.0 / e, "lr": 1e-3, "val_SumR": s, "seconds": 2.0}
               for e, s in ((1, 50.0), (2, 80.0), (3, 70.0))]
    (logs_dir / "full-s1.json").write_text(json.dumps(entries))
    shifted = [{**e, "loss": e["loss"] + 1.0, "val_SumR": e["val_SumR"] + 10.0} for e in entries]
    (logs_dir / "full-s2.json").write_text(json.dumps(shifted))
    summary = reports.training_summary(reports.load_logs(["full"], [1, 2], logs_dir))  # the mean of two seeds
    row = summary.loc["full"]
    assert (row["epochs"], row["best epoch"], row["best val SumR"]) == (3, 2, 85.0)
    assert row["final loss"] == pytest.approx(1.5)
    assert row["time (s)"] == pytest.approx(6.0)
    (logs_dir / "empty-s1.json").write_text("[]")
    with pytest.raises(DataError, match="empty-s1.json: expected a non-empty list"):
        reports.load_logs(["empty"], [1], logs_dir)


def test_annotation_stats_hand_worked():
    recs = {"train": [Record("a", "1", "q", 10.0, (0.0, 1.0)), Record("a", "2", "q", 10.0, (2.0, 7.0)),
                      Record("b", "3", "q", 20.0, (0.0, 20.0))],
            "test": [Record("c", "4", "q", 4.0, (1.0, 2.0))]}
    summary, queries = reports.annotation_stats(recs)
    assert summary.loc["train", "videos"] == 2 and summary.loc["train", "queries"] == 3
    assert summary.loc["train", "mean duration (s)"] == pytest.approx(15.0)  # per video, not per query
    assert summary.loc["train", "mean moment/video"] == pytest.approx((0.1 + 0.5 + 1.0) / 3)
    assert summary.loc["test", "mean moment/video"] == pytest.approx(0.25)
    assert len(queries) == 4


def test_video_events_prefers_captions(tmp_path):
    records = [Record("v", "1", "q", 10.0, (2.0, 4.0))]
    assert reports.video_events(tmp_path, "v", records) == [(2.0, 4.0)]
    (tmp_path / "captions.jsonl").write_text(
        '{"vid_name": "v", "start": 5.0, "end": 6.0, "caption": "x"}\n'
        '{"vid_name": "w", "start": 0.0, "end": 1.0, "caption": "y"}\n'
        '{"vid_name": "v", "start": 0.0, "end": 2.5, "caption": "z"}\n')
    assert reports.video_events(tmp_path, "v", records) == [(0.0, 2.5), (5.0, 6.0)]


def test_top_k_table_marks_the_true_video():
    rankings = [{"desc_id": "q1", "vid_name": "v2", "rank": 2, "top10": ["v9", "v2", "v3"], "score": 0.3},
                {"desc_id": "q2", "vid_name": "v5", "rank": 1, "top10": ["v5", "v1", "v3"], "score": 0.5}]
    table = reports.top_k_table(rankings, {"q1": "a red circle"}, count=1, k=2)
    assert list(table.index) == ["q1"]
    assert table.loc["q1", "top-2"] == "v9, *v2*"
    assert table.loc["q1", "query"] == "a red circle"


def test_figures_are_labelled_and_saved_as_png(tmp_path):
    fig = reports.event_timeline(np.array([0.1, 0.5, 0.2]), np.array([[0, 1], [0, 0.5], [0.5, 1]]), 8.0,
                                 (1.0, 3.0), "q1")
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("q1", "time (s)", "cosine similarity")
    segments = [c.get_segments()[0].tolist() for c in ax.collections]
    assert segments == [[[0.0, 0.1], [8.0, 0.1]], [[0.0, 0.5], [4.0, 0.5]], [[4.0, 0.2], [8.0, 0.2]]]  # span x 8 s
    assert [c.get_color()[0][:3].tolist() for c in ax.collections][1] == list(matplotlib.colors.to_rgb("tab:red"))
    path = reports.save_figure(fig, "timeline", tmp_path / "figures")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert [p.name for p in path.parent.iterdir()] == ["timeline.png"]  # no temporary file left


def test_mask_figure_one_panel_per_interaction():
    pyramid = build_pyramid(4, [0, 0])
    masks = {name: event_node_mask(pyramid, name) for name in INTERACTIONS}
    fig = reports.plot_masks(masks, pyramid.num_events, "masks")
    assert [ax.get_title() for ax in fig.axes] == list(INTERACTIONS)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (pyramid.num_events, pyramid.num_nodes)


# --------------------------------------------------------------------------- render (real papermill)

@pytest.fixture
def report_repo(tmp_path, monkeypatch):
    """A directory laid out like the repo root with hand-made outputs of two variants."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    write_metrics(tmp_path / "metrics", "full", 180.0)
    write_metrics(tmp_path / "metrics", "zs_maxframe", 90.0, kind="maxframe")
    write_breakdown(tmp_path / "results", "full", 5.0)
    write_breakdown(tmp_path / "results", "zs_maxframe", 0.0)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"] = {"trained": ["full"], "seeds": [42], "zero_shot": ["zs_maxframe"],
                    "ablations": {"components": ["full"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


FOLDERS = {"metrics": Path("metrics"), "logs": Path("logs"), "results": Path("results"), "runs": Path("runs"),
           "out": Path("reports")}
REPORT_ARGS = ["--data", "data", "--cache", "cache", *[a for k, v in FOLDERS.items() for a in (f"--{k}", str(v))]]


def render_here(name):
    return render(name, "params.yaml", Layout(Path("data"), Path("cache")), FOLDERS)


def test_render_results_writes_html_figures_and_tables(report_repo):
    html = render_here("results")
    text = html.read_text()
    assert "zs_maxframe" in text and "full" in text
    assert "compared = [" not in text  # input cells are not rendered
    assert (report_repo / "reports/executed/results.ipynb").is_file()
    for name in ("main", "by_ratio", "by_kind"):
        assert (report_repo / f"reports/figures/results/{name}.png").stat().st_size > 2000
        assert (report_repo / f"reports/tables/results/{name}.md").read_text().count("zs_maxframe") == 1
    assert not list((report_repo / "reports/executed").glob(".*"))  # no partial notebook left


def test_render_missing_input_is_a_data_error_naming_the_file(report_repo, capsys):
    assert main(["report", "training", *REPORT_ARGS]) == 2  # no logs/full-s42.json in this repo
    assert "error: logs/full-s42.json: missing input" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"logs/full-s42\.json: missing input \(written by train@full-42"):
        render_here("training")
    assert not (report_repo / "reports/training.html").exists()


def test_render_failing_cell_is_one_line(report_repo, capsys):
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                           nbformat.v4.new_code_cell("raise ValueError('bad bins')")])
    nbformat.write(book, report_repo / "notebooks" / "broken.ipynb")
    assert main(["report", "broken", *REPORT_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: notebooks/broken.ipynb: cell 2 failed: ValueError: bad bins")
    assert "\n" not in err  # one line, no traceback dump
    assert (report_repo / "reports/executed/broken.failed.ipynb").is_file()


def test_render_unknown_notebook_lists_the_available_ones(report_repo):
    with pytest.raises(DataError, match=r"notebooks/result\.ipynb: no such report notebook; available: .*results"):
        render_here("result")


def test_ablation_table_reads_the_pooled_comparisons(tmp_path):
    for name, sumr in (("full", 200.0), ("same", 200.0), ("worse", 150.0)):
        write_metrics(tmp_path, name, sumr)
    rows = [{"variant": "same", "reference": "full", "delta_SumR": 0.0, "ci": [-1.5, 2.0], "verdict": "no difference"},
            {"variant": "worse", "reference": "full", "delta_SumR": -50.0, "ci": [-60.0, -40.0], "verdict": "loss"}]
    (tmp_path / "comparisons.json").write_text(json.dumps({"reference": "full", "tables": {"t": rows}}))
    table = reports.ablation_table(reports.load_metrics(["full", "same", "worse"], tmp_path),
                                   ["full", "same", "worse"], tmp_path)
    assert table["ΔSumR vs full"].tolist() == [0.0, 0.0, -50.0]
    assert table["95% CI of Δ"].tolist() == ["", "[-1.5, +2.0]", "[-60.0, -40.0]"]
    assert table["verdict"].tolist() == ["reference", "no difference", "loss"]
    with pytest.raises(DataError, match=r"comparisons\.json: no comparison for variant\(s\) other"):
        write_metrics(tmp_path, "other", 1.0)
        reports.ablation_table(reports.load_metrics(["full", "other"], tmp_path), ["full", "other"], tmp_path)


def test_render_removes_what_a_killed_or_failed_run_left(report_repo):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   report_repo / "notebooks" / "tiny.ipynb")
    left = [Path("reports/executed/.tiny.running.ipynb"), Path("reports/executed/tiny.failed.ipynb"),
            Path("reports/.tiny.html.k1ll3d_x.tmp"), Path("reports/figures/tiny/.a.png.k1ll3d_x.tmp"),
            Path("reports/tables/tiny/.a.md.k1ll3d_x.tmp")]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by SIGKILL")
    other = Path("reports/executed/results.failed.ipynb")  # another report's: not this run's to remove
    other.write_text("x")
    render_here("tiny")
    assert not any(path.exists() for path in left)
    assert other.exists() and Path("reports/executed/tiny.ipynb").is_file()
