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
from propy.data.annotations import Record
from propy.errors import DataError
from propy.masks import VARIANTS, event_node_mask
from propy.pyramid import build_pyramid
from propy.render import render

REPO = Path(__file__).resolve().parents[1]


def write_metrics(root: Path, name: str, sumr: float, kind: str = "propy") -> None:
    """A metrics file in the contract's shape whose recalls add up to ``sumr``."""
    r = [sumr * f for f in (0.1, 0.2, 0.3, 0.4)]
    metrics = {"variant": name, "kind": kind, "split": "test", "epoch": 1,
               "R1": r[0], "R5": r[1], "R10": r[2], "R100": r[3], "SumR": sumr, "MedR": 3.0, "MeanR": 4.5,
               "unnormalized": {"R1": 1.0, "R5": 2.0, "R10": 3.0, "R100": 4.0, "SumR": 10.0},
               "vcmr": {"IoU0.5": {"R1": 5.0, "R10": 15.0, "R100": 30.0}},
               "probes": {"order": {"n": 4, "n_rival": 4, "pairwise": sumr / 4, "ci": [sumr / 4 - 10, sumr / 4 + 5]},
                          "context": {"n": 2, "n_rival": 0}},
               "text_separability": {"frozen": {"order": 0.6, "all_queries": 0.3},
                                     "trained": {"order": sumr / 1000, "all_queries": 0.4}}}
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


def test_probe_and_separability_tables(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    write_metrics(tmp_path, "zs_maxframe", 100.0, kind="maxframe")
    probes = reports.probe_table(["zs_maxframe", "full"], tmp_path)
    assert probes.to_dict() == {"order": {"zs_maxframe": "25.0 [15.0, 30.0]", "full": "50.0 [40.0, 55.0]"}}
    sep = reports.separability_table(["zs_maxframe", "full"], tmp_path)
    assert list(sep.index) == ["frozen CLIP", "zs_maxframe", "full"]
    assert sep.loc["frozen CLIP", "order"] == 0.6 and sep.loc["full", "order"] == 0.2
    assert sep.loc["zs_maxframe", "all_queries"] == 0.4


def test_ratio_histogram_by_kind_sums_the_splits():
    hist = {"edges": [0.0, 0.1, 0.2], "counts": {"order": [1, 2], "composition": [0, 3]}}
    stats = {"splits": {"train": {"ratio_histogram": hist},
                        "test": {"ratio_histogram": {"edges": [0.0, 0.1, 0.2], "counts": {"order": [4, 0]}}}}}
    table = reports.ratio_histogram_by_kind(stats)
    assert list(table.index) == ["0-0.1", "0.1-0.2"]
    assert table["order"].tolist() == [5, 2] and table["composition"].tolist() == [0, 3]
    assert reports.ratio_histogram_by_kind({}).empty


def test_missing_metrics_name_the_file_and_the_stage(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    with pytest.raises(DataError, match=r"depth1\.json: missing input \(written by evaluate@depth1"):
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
    (logs_dir / "full.json").write_text(json.dumps(entries))
    summary = reports.training_summary(reports.load_logs(["full"], logs_dir))
    row = summary.loc["full"]
    assert (row["epochs"], row["best epoch"], row["best val SumR"]) == (3, 2, 80.0)
    assert row["final loss"] == pytest.approx(1.0)
    assert row["time (s)"] == pytest.approx(6.0)
    (logs_dir / "empty.json").write_text("[]")
    with pytest.raises(DataError, match="empty.json: expected a non-empty list"):
        reports.load_logs(["empty"], logs_dir)


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
    pyramid = build_pyramid(4, overlaps=[0, 0])
    masks = {name: event_node_mask(pyramid, name) for name in VARIANTS}
    fig = reports.plot_masks(masks, pyramid.num_events, "masks")
    assert [ax.get_title() for ax in fig.axes] == list(VARIANTS)
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
    raw["study"] = {"trained": ["full"], "zero_shot": ["zs_maxframe"], "ablations": {"components": ["full"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_results_writes_html_figures_and_tables(report_repo):
    html = render("results")
    text = html.read_text()
    assert "zs_maxframe" in text and "full" in text
    assert "compared = [" not in text  # input cells are not rendered
    assert (report_repo / "reports/executed/results.ipynb").is_file()
    for name in ("main", "by_ratio", "by_kind"):
        assert (report_repo / f"reports/figures/results/{name}.png").stat().st_size > 2000
        assert (report_repo / f"reports/tables/results/{name}.md").read_text().count("zs_maxframe") == 1
    assert "45.0 [35.0, 50.0]" in (report_repo / "reports/tables/results/probes.md").read_text()  # full: 180 / 4
    assert "frozen CLIP" in (report_repo / "reports/tables/results/separability.md").read_text()
    assert not list((report_repo / "reports/executed").glob(".*"))  # no partial notebook left


def test_render_missing_input_is_a_data_error_naming_the_file(report_repo, capsys):
    assert main(["report", "training"]) == 2  # no logs/train/full.json in this repo
    assert "error: logs/train/full.json: missing input" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"logs/train/full\.json: missing input \(written by train@full"):
        render("training")
    assert not (report_repo / "reports/training.html").exists()


def test_render_failing_cell_is_one_line(report_repo, capsys):
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                           nbformat.v4.new_code_cell("raise ValueError('bad bins')")])
    nbformat.write(book, report_repo / "notebooks" / "broken.ipynb")
    assert main(["report", "broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: notebooks/broken.ipynb: cell 2 failed: ValueError: bad bins")
    assert "\n" not in err  # one line, no traceback dump
    assert (report_repo / "reports/executed/broken.failed.ipynb").is_file()


def test_render_unknown_notebook_lists_the_available_ones(report_repo):
    with pytest.raises(DataError, match=r"notebooks/result\.ipynb: no such report notebook; available: .*results"):
        render("result")


def write_rankings(root: Path, name: str, ranks: dict[str, int]) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"desc_id": d, "vid_name": "v", "rank": r, "top10": [], "score": 0.0})
             for d, r in ranks.items()]
    (root / name / "rankings.jsonl").write_text("\n".join(lines) + "\n")


def test_ablation_table_pairs_queries_by_id(tmp_path):
    metrics, results = tmp_path / "metrics", tmp_path / "results"
    write_metrics(metrics, "full", 200.0)
    write_metrics(metrics, "same", 200.0)
    write_metrics(metrics, "worse", 150.0)
    write_rankings(results, "full", {"q1": 1, "q2": 1, "q3": 1})
    write_rankings(results, "same", {"q3": 1, "q1": 1, "q2": 1})  # other order, same ranks
    write_rankings(results, "worse", {"q1": 200, "q2": 200, "q3": 200})  # outside R@100 everywhere
    table = reports.ablation_table(reports.load_metrics(["full", "same", "worse"], metrics),
                                   ["full", "same", "worse"], "full", results)
    assert table["ΔSumR vs full"].tolist() == [0.0, 0.0, -50.0]
    # the interval comes from the ranks: identical ranks -> [0, 0]; all lost -> exactly -400
    assert table["95% CI of Δ"].tolist() == ["[+0.0, +0.0]", "[+0.0, +0.0]", "[-400.0, -400.0]"]


def test_ablation_table_rejects_other_queries(tmp_path):
    metrics, results = tmp_path / "metrics", tmp_path / "results"
    for name in ("full", "other"):
        write_metrics(metrics, name, 200.0)
    write_rankings(results, "full", {"q1": 1})
    write_rankings(results, "other", {"q2": 1})
    with pytest.raises(DataError, match=r"other/rankings\.jsonl: not the queries of full"):
        reports.ablation_table(reports.load_metrics(["full", "other"], metrics), ["full", "other"], "full", results)
