"""propy.reports.tables on small hand-made stage outputs, and propy.reports.render executing real notebooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the unit tests draw without a display; notebooks keep their inline backend

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from propy.cli import main
from propy.config import Layout
from propy.data.annotations import Record
from propy.errors import DataError
from propy.model import network
from propy.model.masks import INTERACTIONS, event_node_mask
from propy.model.pyramid import build_pyramid
from propy.reports import figures, tables, text
from propy.reports.render import render

REPO = Path(__file__).resolve().parents[1]


def write_metrics(root: Path, name: str, sumr: float, kind: str = "propy", probes: bool = True) -> None:
    """A metrics file in the contract's shape whose recalls add up to ``sumr`` (with rival probes and
    text separability unless ``probes`` is false)."""
    r = [sumr * f for f in (0.1, 0.2, 0.3, 0.4)]
    metrics = {
        "variant": name,
        "kind": kind,
        "split": "test",
        "epoch": 1,
        "R1": r[0],
        "R5": r[1],
        "R10": r[2],
        "R100": r[3],
        "SumR": sumr,
        "MedR": 3.0,
        "MeanR": 4.5,
        "unnormalized": {"R1": 1.0, "R5": 2.0, "R10": 3.0, "R100": 4.0, "SumR": 10.0},
        "vcmr": {"IoU0.5": {"R1": 5.0, "R10": 15.0, "R100": 30.0}},
    }
    extras = {
        "probes": {
            "order": {"n": 4, "n_rival": 4, "pairwise": sumr / 4, "ci": [sumr / 4 - 10, sumr / 4 + 5]},
            "context": {"n": 2, "n_rival": 0},
        },
        "text_separability": {
            "frozen": {"order": 0.6, "all_queries": 0.3},
            "trained": {"order": sumr / 1000, "all_queries": 0.4},
        },
    }
    metrics.update(extras if probes else {})
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.json").write_text(json.dumps(metrics))


def write_breakdown(root: Path, name: str, offset: float) -> None:
    rec = {"n": 4, "R1": 1.0, "R5": 2.0, "R10": 3.0, "R100": 4.0}
    data = {
        "by_ratio": [{"bin": "<0.1", **rec, "SumR": 10 + offset}, {"bin": ">=0.4", **rec, "SumR": 20 + offset}],
        "by_kind": [{"kind": "single", **rec, "SumR": 30 + offset}, {"kind": "multi", **rec, "SumR": 40 + offset}],
    }
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "breakdown.json").write_text(json.dumps(data))


def test_load_metrics_keeps_order_and_values(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    write_metrics(tmp_path, "zs_maxframe", 100.0, kind="maxframe")
    table = tables.load_metrics(["zs_maxframe", "full"], tmp_path)
    assert list(table.index) == ["zs_maxframe", "full"]
    assert table.loc["full", "R10"] == pytest.approx(60.0)
    assert table.loc["zs_maxframe", "kind"] == "maxframe"
    assert table.loc["full", "unnormalised SumR"] == 10.0


def test_probe_and_separability_tables(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    write_metrics(tmp_path, "zs_maxframe", 100.0, kind="maxframe")
    probes = tables.probe_table(["zs_maxframe", "full"], tmp_path)
    order = probes.loc["order"].set_index("variant")
    assert order.loc["zs_maxframe", ["pairwise", "low", "high"]].tolist() == [25.0, 15.0, 30.0]
    assert order.loc["full", ["pairwise", "low", "high"]].tolist() == [50.0, 40.0, 55.0]
    assert np.isnan(probes.loc["context"].set_index("variant").loc["full", "pairwise"])  # no rivals: no pairs
    sep = tables.separability_table(["zs_maxframe", "full"], tmp_path)
    assert list(sep.index) == ["frozen CLIP", "zs_maxframe", "full"]
    assert sep.loc["frozen CLIP", "order"] == 0.6 and sep.loc["full", "order"] == 0.2
    assert sep.loc["zs_maxframe", "all_queries"] == 0.4


def test_ratio_histogram_by_kind_sums_the_splits():
    hist = {"edges": [0.0, 0.1, 0.2], "counts": {"order": [1, 2], "composition": [0, 3]}}
    stats = {
        "splits": {
            "train": {"ratio_histogram": hist},
            "test": {"ratio_histogram": {"edges": [0.0, 0.1, 0.2], "counts": {"order": [4, 0]}}},
        }
    }
    table = tables.ratio_histogram_by_kind(stats)
    assert list(table.index) == ["0-0.1", "0.1-0.2"]
    assert table["order"].tolist() == [5, 2] and table["composition"].tolist() == [0, 3]
    assert tables.ratio_histogram_by_kind({}).empty


def test_missing_metrics_name_the_file_and_the_stage(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    with pytest.raises(DataError, match=r"depth1\.json: missing input \(written by pool"):
        tables.load_metrics(["full", "depth1"], tmp_path)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "full.json"
    path.write_text('{"R1": 1.0,\n "R5": }\n')
    with pytest.raises(DataError, match=r"full\.json: line 2: not valid JSON"):
        tables.read_json(path)


def test_metric_table_rejects_unknown_variant(tmp_path):
    write_metrics(tmp_path, "full", 200.0)
    table = tables.load_metrics(["full"], tmp_path)
    with pytest.raises(DataError, match="no metrics for variant.*ia_none"):
        tables.metric_table(table, ["full", "ia_none"])


def test_markdown_table_hand_worked():
    table = pd.DataFrame(
        {"R1": [12.345, float("nan")], "kind": ["propy", "a|b"]}, index=pd.Index(["full", "zs"], name="variant")
    )
    assert tables.to_markdown(table) == (
        "| variant | R1 | kind |\n|---|---|---|\n| full | 12.3 | propy |\n| zs | - | a\\|b |\n"
    )


def test_save_table_writes_md_and_csv_atomically(tmp_path):
    table = pd.DataFrame({"SumR": [150.25, 90.5]}, index=pd.Index(["full", "ia_none"], name="variant"))
    md, csv = tables.save_table(table, "depth", tmp_path / "tables")
    assert md.read_text().splitlines()[2] == "| full | 150.2 |"  # rounded half to even by format
    back = pd.read_csv(csv, index_col="variant")
    assert back.loc["ia_none", "SumR"] == 90.5
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["depth.csv", "depth.md"]


def test_breakdown_table_pivots_in_first_seen_order(tmp_path):
    write_breakdown(tmp_path, "zs_maxframe", 0.0)
    write_breakdown(tmp_path, "full", 5.0)
    long = tables.load_breakdown(["zs_maxframe", "full"], "by_ratio", tmp_path)
    table = tables.breakdown_table(long, "bin")
    assert list(table.index) == ["<0.1", ">=0.4"]
    assert list(table.columns) == ["zs_maxframe", "full"]
    assert table.loc[">=0.4", "full"] == 25.0
    with pytest.raises(DataError, match="field 'by_span' missing"):
        tables.load_breakdown(["full"], "by_span", tmp_path)


def test_training_summary_finds_the_best_epoch(tmp_path):
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    entries = [
        {"epoch": e, "step": 10 * e, "loss": 3.0 / e, "lr": 1e-3, "val_SumR": s, "seconds": 2.0}
        for e, s in ((1, 50.0), (2, 80.0), (3, 70.0))
    ]
    (logs_dir / "full-s1.json").write_text(json.dumps(entries))
    shifted = [{**e, "loss": e["loss"] + 1.0, "val_SumR": e["val_SumR"] + 10.0} for e in entries]
    (logs_dir / "full-s2.json").write_text(json.dumps(shifted))
    summary = tables.training_summary(tables.load_logs(["full"], [1, 2], logs_dir), {"full": [2, 3]})  # 2 seeds' mean
    row = summary.loc["full"]
    assert (row["epochs"], row["evaluated epochs"]) == (3, [2, 3])
    assert row["final loss"] == pytest.approx(1.5)
    assert row["time (s)"] == pytest.approx(6.0)
    (logs_dir / "empty-s1.json").write_text("[]")
    with pytest.raises(DataError, match="empty-s1.json: expected a non-empty list"):
        tables.load_logs(["empty"], [1], logs_dir)


def test_annotation_stats_hand_worked():
    recs = {
        "train": [
            Record("a", "1", "q", 10.0, (0.0, 1.0)),
            Record("a", "2", "q", 10.0, (2.0, 7.0)),
            Record("b", "3", "q", 20.0, (0.0, 20.0)),
        ],
        "test": [Record("c", "4", "q", 4.0, (1.0, 2.0))],
    }
    summary, queries = tables.annotation_stats(recs)
    assert summary.loc["train", "videos"] == 2 and summary.loc["train", "queries"] == 3
    assert summary.loc["train", "mean duration (s)"] == pytest.approx(15.0)  # per video, not per query
    assert summary.loc["train", "mean moment/video"] == pytest.approx((0.1 + 0.5 + 1.0) / 3)
    assert summary.loc["test", "mean moment/video"] == pytest.approx(0.25)
    assert len(queries) == 4


def test_verdict_table_lists_each_claim_once(tmp_path):
    claims = {
        "claims": [
            {
                "name": "interaction",
                "claim": "ADI localises",
                "primary_test": "full - ia_none: loc, context queries",
                "variant": "full",
                "against": "ia_none",
                "delta": 12.5,
                "ci": [2.25, 22.0],
                "mde": 9.04,
                "ceiling": {"full": 93.3, "ia_none": 80.0},
                "p_holm": 0.0123,
                "verdict": "supported",
            },
            {
                "name": "text",
                "claim": "text prompts help",
                "primary_test": "full - no_text_prompts: SumR, all queries",
                "variant": "full",
                "against": "no_text_prompts",
                "delta": -3.0,
                "ci": [-9.0, 3.0],
                "mde": 8.4,
                "p_holm": 0.5,
                "verdict": "not shown",
            },
            {
                "name": "vs_msl",
                "claim": "beats MS-SL",
                "primary_test": "full - msl: SumR, all queries",
                "variant": "full",
                "against": "msl",
                "verdict": "skipped",
                "note": "'msl' not in study",
            },
        ]
    }
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    table = tables.verdict_table(tmp_path)
    assert table.to_dict("records") == [
        {
            "claim": "ADI localises",
            "primary test": "full - ia_none: loc, context queries",
            "Δ [95% CI]": "+12.5 [+2.2, +22.0]",
            "MDE": "9.0",
            "ceiling": "93% / 80%",
            "p (Holm)": "0.012",
            "verdict": "supported",
        },
        {
            "claim": "text prompts help",
            "primary test": "full - no_text_prompts: SumR, all queries",
            "Δ [95% CI]": "-3.0 [-9.0, +3.0]",
            "MDE": "8.4",
            "ceiling": "-",
            "p (Holm)": "0.500",
            "verdict": "not shown",
        },
        {
            "claim": "beats MS-SL",
            "primary test": "full - msl: SumR, all queries",
            "Δ [95% CI]": "",
            "MDE": "",
            "ceiling": "",
            "p (Holm)": "",
            "verdict": "skipped: 'msl' not in study",
        },
    ]


def test_early_best_table_lists_flagged_runs(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps(
            {"runs": ["a-s1", "a-s2"], "epoch": [1, 7], "early_best": {"epochs": 10, "limit": 2.0, "runs": ["a-s1"]}}
        )
    )
    (tmp_path / "zs.json").write_text(json.dumps({"runs": ["zs"], "epoch": [None]}))
    table = tables.early_best_table(["a", "zs"], tmp_path)
    assert table.to_dict("records") == [{"variant": "a", "run": "a-s1", "best epoch": 1, "of epochs": 10}]


def test_video_events_prefers_captions(tmp_path):
    records = [Record("v", "1", "q", 10.0, (2.0, 4.0))]
    assert tables.video_events(tmp_path, "v", records) == [(2.0, 4.0, "q")]
    (tmp_path / "captions.jsonl").write_text(
        '{"vid_name": "v", "start": 5.0, "end": 6.0, "caption": "x"}\n'
        '{"vid_name": "w", "start": 0.0, "end": 1.0, "caption": "y"}\n'
        '{"vid_name": "v", "start": 0.0, "end": 2.5, "caption": "z"}\n'
    )
    assert tables.video_events(tmp_path, "v", records) == [(0.0, 2.5, "z"), (5.0, 6.0, "x")]


def test_top_videos_name_each_ones_best_matching_event():
    example = {"desc_id": "q1", "vid_name": "v2", "rank": 2, "top10": ["v9", "v2", "v3"]}
    events = {"v9": ["a red circle moves right", "a blue square grows"], "v2": ["a red circle moves left"]}
    table = tables.top_videos(example, events, "a red circle moves left", k=2)
    assert table["video"].tolist() == ["v9", "v2 (true)"]
    assert table["its best-matching event"].tolist() == ["a red circle moves right", "a red circle moves left"]


def test_examples_by_rule_best_and_worst_per_kind_and_the_rank1_rival():
    rankings = [
        {"desc_id": d, "vid_name": v, "rank": r, "top10": top}
        for d, v, r, top in (
            ("a1", "v1", 3, ["v9", "v8", "v1"]),
            ("a2", "v2", 1, ["v2"]),
            ("a3", "v3", 1, ["v3"]),
            ("b1", "v4", 7, ["v5"]),
        )
    ]
    kinds = {"a1": "order", "a2": "order", "a3": "order", "b1": "multi"}
    picked = tables.pick_examples(rankings, kinds)
    assert [(e["desc_id"], e["kind"], e["pick"]) for e in picked] == [
        ("b1", "multi", "best"),
        ("a2", "order", "best"),
        ("a1", "order", "worst"),
    ]  # ties: first desc_id
    texts = {"a1": "a red circle moves left", "a2": "x", "b1": "a blue cross appears"}
    events = {"v9": ["a red circle moves right"], "v5": ["a green star shrinks, then a cat sits"]}
    annotated = tables.annotate_examples(picked, texts, events)
    rival = annotated[2]
    assert rival["rival_text"] == "a red circle moves right"
    assert rival["rival_words"] == (["left"], ["right"]) and rival["rival_differs"]
    assert not annotated[0]["rival_differs"] and "rival_text" not in annotated[1]
    html = text.example_html(rival, 40)
    assert "Rank 1 is v9" in html and "hard negative" in html and "rank 3 of 40" in html
    line = text.qualitative_findings(annotated)
    assert line[0].startswith("3 queries chosen by rule") and "2 of them" in line[0]
    assert line[1].startswith("In 1 of those 2")


def write_rankings(root: Path, run: str, ranks: dict[str, int]) -> None:
    (root / run).mkdir(parents=True, exist_ok=True)
    (root / run / "rankings.jsonl").write_text(
        "".join(
            json.dumps({"desc_id": d, "vid_name": "v", "rank": r, "top10": [], "score": 0.0}) + "\n"
            for d, r in ranks.items()
        )
    )


def test_group_intervals_sizes_means_and_intervals(tmp_path):
    write_rankings(tmp_path, "full-s1", {"q1": 1, "q2": 1, "q3": 50, "q4": 200})
    write_rankings(tmp_path, "full-s2", {"q1": 1, "q2": 6, "q3": 50, "q4": 200})
    write_rankings(tmp_path, "zs", {"q1": 200, "q2": 200, "q3": 200, "q4": 1})
    groups = {"q1": "a", "q2": "a", "q3": "b", "q4": "b"}
    out = tables.group_intervals(["full", "zs"], groups, ["a", "b", "c"], ["full"], [1, 2], tmp_path, [1, 5, 10, 100])
    full_a = out[(out["variant"] == "full")].loc["a"]
    # seed 1: both queries at rank 1 -> SumR 400; seed 2: q2 at 6 -> R1 50 + R5 50 + R10 100 + R100 100 = 300
    assert (full_a["n"], full_a["SumR"]) == (2, pytest.approx(350.0))
    assert full_a["low"] <= 350.0 <= full_a["high"] and full_a["high"] == pytest.approx(400.0)
    assert out[out["variant"] == "zs"].loc["b", "SumR"] == pytest.approx(200.0)
    assert "c" not in out.index  # an empty group is left out
    table = tables.interval_table(out, "kind")
    assert table.loc["a", "queries"] == 2 and table.loc["a", "full"].startswith("350.0 [")
    with pytest.raises(DataError, match="no group for 1 test queries of full"):
        tables.group_intervals(["full"], {"q1": "a", "q2": "a", "q3": "b"}, ["a"], ["full"], [1, 2], tmp_path, [1])


def test_probe_table_reads_probes_and_is_none_without_them(tmp_path):
    write_metrics(tmp_path, "full", 200.0, probes=False)
    write_metrics(tmp_path, "zs", 100.0, probes=False)
    assert tables.probe_table(["full", "zs"], tmp_path) is None
    m = json.loads((tmp_path / "full.json").read_text())
    m["probes"] = {
        "order": {"n": 10, "n_rival": 8, "pairwise": 75.0, "ci": [50.0, 93.75], "R1": 20.0},
        "appearance": {"n": 4, "n_rival": 0, "R1": 50.0},
    }
    (tmp_path / "full.json").write_text(json.dumps(m))
    table = tables.probe_table(["full", "zs"], tmp_path)
    assert table.loc["order", ["pairs", "pairwise", "low", "high"]].tolist() == [8, 75.0, 50.0, 93.75]
    assert np.isnan(table.loc["appearance", "pairwise"])


def write_comparisons(root: Path) -> None:
    rows = {
        "depth": [{"variant": "depth1", "delta_SumR": -12.0, "ci": [-20.0, -4.0], "verdict": "loss"}],
        "components": [
            {"variant": "no_adapters", "delta_SumR": 1.0, "ci": [-3.0, 5.0], "verdict": "no difference"},
            {"variant": "single_event", "delta_SumR": 6.0, "ci": [2.0, 9.0], "verdict": "gain"},
        ],
        "zero_shot": [{"variant": "zs_maxframe", "delta_SumR": -90.0, "ci": [-99.0, -80.0], "verdict": "loss"}],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparisons.json").write_text(json.dumps({"reference": "full", "num_queries": 12, "tables": rows}))


def test_effects_and_their_verdicts_and_findings(tmp_path):
    write_comparisons(tmp_path)
    effects = tables.effects(
        tmp_path, {"depth": ["depth1", "full"], "components": ["full", "no_adapters", "single_event"]}
    )
    assert effects["variant"].tolist() == ["depth1", "no_adapters", "single_event"]
    assert effects.loc[0, ["delta", "low", "high"]].tolist() == [-12.0, -20.0, -4.0]
    lines = text.ablation_findings(effects, "full")
    assert lines[0] == "Pyramid depth, by test SumR: full scores higher than depth1."
    assert lines[1] == (
        "Temporal adapters and the other components, by test SumR: no difference between full and "
        "no_adapters; single_event scores higher than full."
    )
    assert lines[2] == "The largest loss: depth1 scores -12.0 SumR [-20.0, -4.0] against full (lower)."
    same = effects.iloc[[1]]
    assert text.claim_verdict("beyond_paper", same, "full") == (
        "Positive controls beyond the paper, by test SumR: no difference between full and no_adapters."
    )
    assert text.claim_verdict("new_table", same, "full").startswith("New table, by test SumR: ")
    assert text.claim_verdict("prior_method", same, "full").startswith("Prior method, by test SumR: ")
    with pytest.raises(DataError, match="no comparison for ia_none in table 'interaction'"):
        tables.effects(tmp_path, {"interaction": ["full", "ia_none"]})
    fig = figures.plot_effects(effects, "full", "t")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["depth1", "no_adapters", "single_event"]
    assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())


def test_overview_findings_change_with_the_numbers(tmp_path):
    write_comparisons(tmp_path)
    write_metrics(tmp_path, "full", 200.0)
    effects = tables.effects(tmp_path, {"depth": ["depth1"], "zero_shot": ["zs_maxframe"]})
    metrics = tables.load_metrics(["full"], tmp_path)
    first = text.overview_findings(metrics, effects, "full", 12)
    assert first[0].startswith("On 12 test queries, full reaches SumR 200.0")
    assert "zs_maxframe scores -90.0 SumR [-99.0, -80.0] against full (lower)" in first[1]
    assert first[2].startswith("Of 1 ablated variants, 1 score below full")
    assert len(first) == 3  # no positive control nor prior method in this study
    write_metrics(tmp_path, "full", 250.0)
    assert text.overview_findings(tables.load_metrics(["full"], tmp_path), effects, "full", 12)[0] != first[0]


def test_controls_and_prior_methods_are_not_counted_as_ablations():
    effects = pd.DataFrame(
        [
            ("depth", "depth1", -5.0, -9.0, -1.0, "loss"),
            ("beyond_paper", "seqconv", 17.6, 0.5, 34.8, "gain"),
            ("prior_method", "msl", -30.0, -40.0, -20.0, "loss"),
        ],
        columns=["claim", "variant", "delta", "low", "high", "verdict"],
    )
    metrics = pd.DataFrame({"SumR": [200.0], "SumR 95% CI": ["[190.0, 210.0]"], "runs": [3]}, index=["full"])
    lines = text.overview_findings(metrics, effects, "full", 12)
    assert lines[1] == (
        "Of 1 ablated variants, 1 score below full, 0 above it and 0 show no difference (interval holds 0)."
    )
    assert (
        lines[2] == "Positive control (not ablations): seqconv scores +17.6 SumR [+0.5, +34.8] against full (higher)."
    )
    assert lines[3].startswith("Prior method (not ablations): msl scores -30.0 SumR")


def test_vcmr_reach_and_the_baselines_note():
    records = [Record("v", str(i), "q", 16.0, (0.0, 16.0 * r)) for i, r in enumerate((1 / 16, 0.125, 0.5, 1.0))]
    reach = tables.vcmr_reach(records, 16, [0.5])
    # whole video: IoU = ratio >= 0.5 for 0.5 and 1.0; one frame: ratio <= 1 / (0.5 * 16) = 0.125
    assert reach.loc["IoU0.5"].tolist() == [50.0, 50.0]
    note = text.vcmr_note(reach, {"zs_meanpool": "meanpool", "zs_maxframe": "maxframe", "full": "propy"}, 16)
    assert "zs_meanpool has one event, the whole video" in note and "1/16 of the video" in note
    assert text.vcmr_note(reach, {"full": "propy"}, 16) == ""


def test_series_styles_keep_twelve_series_apart():
    styles = [figures.series_style(i) for i in range(24)]
    assert len({(s["color"], s["marker"], s["linestyle"]) for s in styles}) == 24
    assert len({s["color"] for s in styles[:12]}) == 12


def test_curves_legend_is_outside_the_axes():
    logs = pd.DataFrame([{"variant": f"v{i}", "epoch": e, "loss": i + e} for i in range(12) for e in (1, 2)])
    fig = figures.plot_curves(logs, "loss", "loss", "t")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert len({line.get_color() for line in ax.get_lines()}) == 12
    assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())


def test_timeline_one_band_per_level_and_figures_saved_as_svg_and_png(tmp_path):
    pyramid = build_pyramid(4, [0, 1])
    scores = np.linspace(0.1, 0.9, pyramid.num_events)
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    fig = figures.event_timeline(
        scores, pyramid.proposals(), pyramid.event_levels, 8.0, (1.0, 3.0), frames, [1.0, 3.0, 5.0, 7.0], "q1"
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"level {k}" for k in range(pyramid.num_levels, 0, -1)]
    outlined = [p for p in ax.patches if p.get_width() > 0 and p.get_linewidth() == 2]
    assert len(outlined) == 1 and outlined[0].get_x() == pytest.approx(8.0 * pyramid.proposals()[-1][0])
    paths = figures.save_figure(fig, "timeline", tmp_path / "figures")
    assert [p.name for p in paths] == ["timeline.svg", "timeline.png"]
    assert "<svg" in paths[0].read_text()[:1000] and paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert round(Image.open(paths[1]).info["dpi"][0]) == 300
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["timeline.png", "timeline.svg"]  # no temporary file


def test_mask_figure_one_panel_per_interaction_with_level_separators():
    pyramid = build_pyramid(4, [0, 0])
    masks = {name: event_node_mask(pyramid, name) for name in INTERACTIONS}
    fig = figures.plot_masks(masks, pyramid.level_counts_top_first, pyramid.num_frames, "masks")
    assert [ax.get_title() for ax in fig.axes] == list(INTERACTIONS)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (pyramid.num_events, pyramid.num_nodes)
    assert len(fig.axes[0].get_lines()) == 2 * (pyramid.num_levels - 1) + 1  # level separators + the frames line
    caption = text.masks_caption(pyramid.num_levels)
    assert all(f"<b>{name}</b>" in caption for name in INTERACTIONS)


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
    raw["study"] = {
        "trained": ["full"],
        "seeds": [42],
        "zero_shot": ["zs_maxframe"],
        "ablations": {"components": ["full"]},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's propy
    return tmp_path


FOLDERS = {
    "metrics": Path("metrics"),
    "logs": Path("logs"),
    "results": Path("results"),
    "runs": Path("runs"),
    "out": Path("reports"),
}
REPORT_ARGS = ["--data", "data", "--cache", "cache", *[a for k, v in FOLDERS.items() for a in (f"--{k}", str(v))]]


def render_here(name):
    return render(name, "params.yaml", Layout(Path("data"), Path("cache")), FOLDERS)


def test_render_missing_input_is_a_data_error_naming_the_file(report_repo, capsys):
    assert main(["report", "training", *REPORT_ARGS]) == 2  # no logs/full-s42.json in this repo
    assert "error: logs/full-s42.json: missing input" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"logs/full-s42\.json: missing input \(written by train@full-42"):
        render_here("training")
    assert not (report_repo / "reports/training.html").exists()


def test_render_failing_cell_is_one_line(report_repo, capsys):
    book = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('bad bins')")]
    )
    nbformat.write(book, report_repo / "notebooks" / "broken.ipynb")
    assert main(["report", "broken", *REPORT_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: notebooks/broken.ipynb: cell 2 failed: ValueError: bad bins")
    assert "\n" not in err  # one line, no traceback dump
    assert (report_repo / "reports/executed/broken.failed.ipynb").is_file()


def test_a_report_run_is_quiet(report_repo, capfd):
    """No noise on every report run: DVC warns about an empty output folder (e.g. ablations with nothing
    to compare), ipykernel about a kernel "running over TCP without encryption" (on the fd: a subprocess)."""
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), report_repo / "notebooks" / "quiet.ipynb"
    )
    render_here("quiet")
    for kind in ("figures", "tables"):
        assert [p.name for p in (report_repo / "reports" / kind / "quiet").iterdir()] == ["NONE.txt"]
    assert "without encryption" not in capfd.readouterr().err


def test_render_unknown_notebook_lists_the_available_ones(report_repo):
    with pytest.raises(DataError, match=r"notebooks/result\.ipynb: no such report notebook; available: .*results"):
        render_here("result")


def test_ablation_table_reads_the_pooled_comparisons(tmp_path):
    for name, sumr in (("full", 200.0), ("same", 200.0), ("worse", 150.0)):
        write_metrics(tmp_path, name, sumr)
    rows = [
        {"variant": "same", "reference": "full", "delta_SumR": 0.0, "ci": [-1.5, 2.0], "verdict": "no difference"},
        {"variant": "worse", "reference": "full", "delta_SumR": -50.0, "ci": [-60.0, -40.0], "verdict": "loss"},
    ]
    (tmp_path / "comparisons.json").write_text(json.dumps({"reference": "full", "tables": {"t": rows}}))
    table = tables.ablation_table(
        tables.load_metrics(["full", "same", "worse"], tmp_path), ["full", "same", "worse"], tmp_path
    )
    assert table["ΔSumR vs full"].tolist() == [0.0, 0.0, -50.0]
    assert table["95% CI of Δ"].tolist() == ["", "[-1.5, +2.0]", "[-60.0, -40.0]"]
    assert table["verdict"].tolist() == ["reference", "no difference", "loss"]
    with pytest.raises(DataError, match=r"comparisons\.json: no comparison for variant\(s\) other"):
        write_metrics(tmp_path, "other", 1.0)
        tables.ablation_table(tables.load_metrics(["full", "other"], tmp_path), ["full", "other"], tmp_path)


def test_render_removes_what_a_killed_or_failed_run_left(report_repo):
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), report_repo / "notebooks" / "tiny.ipynb"
    )
    left = [
        Path("reports/executed/.tiny.running.ipynb"),
        Path("reports/executed/tiny.failed.ipynb"),
        Path("reports/.tiny.html.k1ll3d_x.tmp"),
        Path("reports/figures/tiny/.a.png.k1ll3d_x.tmp"),
        Path("reports/tables/tiny/.a.md.k1ll3d_x.tmp"),
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by SIGKILL")
    other = Path("reports/executed/results.failed.ipynb")  # another report's: not this run's to remove
    other.write_text("x")
    render_here("tiny")
    assert not any(path.exists() for path in left)
    assert other.exists() and Path("reports/executed/tiny.ipynb").is_file()


def test_a_running_report_writes_nothing_among_its_outputs(report_repo):
    """Issue 23 case 8: papermill filled ``reports/executed/.NAME.running.ipynb`` as it went, which a
    killed run left there. The notebook looks at its outputs' folder while it runs."""
    cell = "import json, os\njson.dump(sorted(os.listdir('reports/executed')), open('seen.json', 'w'))"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), report_repo / "notebooks" / "peek.ipynb"
    )
    render_here("peek")
    assert json.loads(Path("seen.json").read_text()) == []
    assert sorted(os.listdir("reports/executed")) == ["peek.ipynb"]
    assert nbformat.read("reports/executed/peek.ipynb", as_version=4).cells[0].source == cell


# --------------------------------------------------------------------------- every page (real papermill)


def write_study(root: Path) -> None:
    """Hand-made outputs of every stage a page reads: 4 test videos x 2 queries, 2 trained variants x
    2 seeds, 2 zero-shot baselines."""
    rng = np.random.default_rng(0)
    (root / "data" / "annotations").mkdir(parents=True)
    kinds, captions = {}, []
    for split in ("train", "val", "test"):
        lines = []
        for v in range(4):
            vid = f"{split}{v}"
            for e, (action, start) in enumerate((("moves left", 0.0), ("grows", 4.0))):
                desc_id = f"{vid}#e{e}"
                lines.append(
                    json.dumps(
                        {
                            "vid_name": vid,
                            "desc_id": desc_id,
                            "desc": f"a shape {v} {action}",
                            "duration": 8.0,
                            "ts": [start, start + 1.0 + v],
                        }
                    )
                )
                kinds[desc_id] = "order" if e == 0 else "appearance"
                captions.append({"vid_name": vid, "start": start, "end": start + 4.0, "caption": f"a shape {v}"})
        (root / "data" / "annotations" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "data" / "query_kinds.json").write_text(json.dumps(kinds))
    (root / "data" / "captions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in captions))
    for split in ("train", "val", "test"):  # every video cached
        cache = root / "cache" / split
        cache.mkdir(parents=True)
        videos = {}
        for v in range(4):
            np.save(cache / f"{split}{v}.npy", rng.integers(0, 255, (24, 8, 8, 3), dtype=np.uint8))
            videos[f"{split}{v}"] = {"file": f"{split}{v}.npy", "num_frames": 24, "duration": 8.0}
        (cache / "manifest.json").write_text(json.dumps({"size": 8, "fps": 3.0, "videos": videos, "skipped": []}))

    pooled = root / "metrics"
    for name, sumr, kind in (
        ("full", 180.0, "propy"),
        ("depth1", 170.0, "propy"),
        ("zs_meanpool", 120.0, "meanpool"),
        ("zs_maxframe", 100.0, "maxframe"),
    ):
        write_metrics(pooled, name, sumr, kind, probes=False)
        m = json.loads((pooled / f"{name}.json").read_text())
        m.update(
            SumR_ci=[sumr - 10, sumr + 10],
            runs=[f"{name}-s42", f"{name}-s43"] if kind == "propy" else [name],
            epoch=[3, 2] if kind == "propy" else 1,
            num_videos=4,
        )
        (pooled / f"{name}.json").write_text(json.dumps(m))
    comparisons = {
        "reference": "full",
        "num_queries": 8,
        "tables": {
            "depth": [{"variant": "depth1", "delta_SumR": -10.0, "ci": [-18.0, -2.0], "verdict": "loss"}],
            "zero_shot": [
                {"variant": "zs_meanpool", "delta_SumR": -60.0, "ci": [-80.0, -40.0], "verdict": "loss"},
                {"variant": "zs_maxframe", "delta_SumR": -80.0, "ci": [-95.0, -60.0], "verdict": "loss"},
            ],
        },
    }
    (pooled / "comparisons.json").write_text(json.dumps(comparisons))
    claim = {
        "name": "pyramid_depth",
        "claim": "a deeper pyramid helps",
        "variant": "full",
        "against": "depth1",
        "kind": "all",
        "metric": "SumR",
        "primary_test": "full vs depth1, SumR on all queries",
        "n": 8,
        "delta": 10.0,
        "ci": [2.0, 18.0],
        "se": 4.1,
        "p": 0.01,
        "alpha_holm": 0.05,
        "p_holm": 0.01,
        "rejected": True,
        "mde": 11.5,
        "verdict": "supported",
    }
    skipped = {
        "name": "interaction",
        "claim": "ADI helps",
        "variant": "full",
        "against": "ia_none",
        "kind": "context",
        "metric": "loc",
        "primary_test": "full vs ia_none, loc on context queries",
        "verdict": "skipped",
        "note": "ia_none is not in the study",
    }
    (pooled / "claims.json").write_text(
        json.dumps({"alpha": 0.05, "power": 0.8, "tests_run": 1, "claims": [claim, skipped]})
    )

    pyramid = build_pyramid(16, [0, 1, 1, 1])
    for run in ("full-s42", "full-s43", "depth1-s42", "depth1-s43", "zs_meanpool", "zs_maxframe"):
        rows = []
        for v in range(4):
            for e in range(2):
                rank = 1 + (v + e + len(run)) % 4
                top = [f"test{(v + i) % 4}" for i in range(1, 4)]
                top.insert(rank - 1, f"test{v}")
                rows.append(
                    {"desc_id": f"test{v}#e{e}", "vid_name": f"test{v}", "rank": rank, "top10": top, "score": 0.5}
                )
        (root / "runs" / run).mkdir(parents=True)
        (root / "runs" / run / "rankings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        np.savez(
            root / "runs" / run / "events.npz",
            desc_ids=np.array([r["desc_id"] for r in rows]),
            gt_event_scores=rng.random((8, pyramid.num_events)),
            proposals=pyramid.proposals(),
            ts=np.array([[0.0, 1.0 + v] for v in range(4) for _ in range(2)]),
            duration=np.full(8, 8.0),
        )
    (root / "logs").mkdir()
    for run in ("full-s42", "full-s43", "depth1-s42", "depth1-s43"):
        entries = [
            {
                "epoch": e,
                "step": 10 * e,
                "loss": 3.0 / e,
                "lr": 1e-3,
                "val_R1": 10.0,
                "val_R5": 30.0,
                "val_R10": 50.0,
                "val_R100": 100.0,
                "val_SumR": 190.0 + e,
                "seconds": 2.0,
            }
            for e in (1, 2, 3)
        ]
        (root / "logs" / f"{run}.json").write_text(json.dumps(entries))


@pytest.fixture
def study_repo(tmp_path, monkeypatch):
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    write_study(tmp_path)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(
        trained=["full", "depth1"],
        seeds=[42, 43],
        zero_shot=["zs_meanpool", "zs_maxframe"],
        ablations={"depth": ["depth1", "full"]},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's propy
    return tmp_path


def test_every_page_has_title_nav_findings_and_svg_png_figures(study_repo):
    from propy.reports.render import available

    pages = available()
    assert pages[0] == "index" and {"data", "results", "ablations", "qualitative", "training", "cost"} <= set(pages)
    for name in pages:
        text = render_here(name).read_text()
        title = text.split("<title>", 1)[1].split("</title>", 1)[0]
        assert title.startswith("ProPy study (synthetic): ") and len(title) > len("ProPy study (synthetic): "), name
        nav = text.split('<nav class="pages"', 1)[1].split("</nav>", 1)[0]
        assert "dataset: <b>synthetic</b>" in nav, name
        links = [part.split('"', 1)[0] for part in nav.split('href="')[1:]]
        assert sorted(links) == sorted([*(f"{n}.html" for n in pages if n != name), "index.html#glossary"]), name
        finding = text.split('<p class="finding">', 1)[1].split("</p>", 1)[0]
        assert len(finding) > 60 and any(ch.isdigit() for ch in finding), name
        figures_dir = study_repo / "reports" / "figures" / name
        svgs = {p.stem for p in figures_dir.glob("*.svg")}
        assert svgs and svgs == {p.stem for p in figures_dir.glob("*.png")}, name
    for name in pages:  # every navigation link resolves to a rendered page
        assert (study_repo / "reports" / f"{name}.html").is_file()
    results = (study_repo / "reports" / "results.html").read_text()
    assert "order" in results and "The metrics hold no rival probes" in results
    assert "Two artefacts of the baselines" in results
    qualitative = (study_repo / "reports" / "qualitative.html").read_text()
    assert qualitative.count("<h3") == 4  # best and worst of each of the two kinds
    assert "could not be retrieved" in (study_repo / "reports" / "ablations.html").read_text()
    index = (study_repo / "reports" / "index.html").read_text()
    glossary = index.split('id="glossary"', 1)[1]
    assert all(f"<b>{v}</b>" in glossary for v in ("full", "depth1", "zs_meanpool", "zs_maxframe"))
    assert "ablation (depth)" in glossary and "zero-shot baseline" in glossary
    assert "compared = [" not in results  # input cells are not rendered
    for table in ("main", "by_ratio", "by_kind", "vcmr"):
        assert (study_repo / f"reports/tables/results/{table}.md").read_text().count("zs_maxframe") == 1, table
    assert not list((study_repo / "reports/executed").glob(".*"))  # no partial notebook left


def test_probe_effects_lists_each_kind_of_each_compared_variant(tmp_path):
    entry = {
        "pairwise": {"delta": 31.5, "ci": [20.0, 40.0], "verdict": "gain"},
        "loc": {"delta": -2.0, "ci": [-9.0, 4.0], "verdict": "no difference"},
    }
    rows = [
        {
            "variant": "seqconv",
            "delta_SumR": 1.0,
            "ci": [-1.0, 2.0],
            "verdict": "no difference",
            "probes": {"order": entry, "context": {"loc": entry["loc"]}},
        }
    ]
    (tmp_path / "comparisons.json").write_text(json.dumps({"reference": "full", "tables": {"beyond": rows}}))
    table = tables.probe_effects(tmp_path, {"beyond": ["full", "seqconv"]})
    assert table[["variant", "kind"]].values.tolist() == [["seqconv", "order"], ["seqconv", "context"]]
    assert table.iloc[0]["Δ pairwise"] == "+31.5 [+20.0, +40.0] gain"
    assert table.iloc[1]["Δ pairwise"] == "" and table.iloc[1]["Δ localisation"] == "-2.0 [-9.0, +4.0] no difference"
    (tmp_path / "comparisons.json").write_text(json.dumps({"reference": "full", "tables": {}}))
    assert tables.probe_effects(tmp_path, {"beyond": ["seqconv"]}).empty


def test_sweep_table_names_its_columns_and_marks_the_studys_row(tmp_path):
    assert tables.sweep_table(tmp_path / "absent.json") is None and tables.sweep_table("") is None
    rows = [
        {"train.lr": 0.003, "val_SumR": 250.0, "best_epoch": 6},
        {"train.lr": 0.01, "val_SumR": 261.0, "best_epoch": 8},
    ]
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"variant": "full", "grid": {"train.lr": [0.003, 0.01]}, "rows": rows}))
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["lr"] = 0.003
    params.write_text(yaml.safe_dump(raw))
    table = tables.sweep_table(sweep, tables.study_settings(params, sweep))
    assert list(table.columns) == ["train.lr", "best validation SumR", "at epoch", "used by the study"]
    assert table["train.lr"].tolist() == ["0.01", "0.003"] and table["at epoch"].tolist() == [8, 6]
    assert table["used by the study"].tolist() == ["", "◀ chosen"]  # the study's lr, not the best one
    sweep.write_text(json.dumps({"variant": "full", "grid": {"train.nope": [1]}, "rows": []}))
    with pytest.raises(DataError, match="swept key 'train.nope' is not a setting"):
        tables.study_settings(params, sweep)


def test_split_counts_name_the_videos_left_out_of_the_gallery():
    summary = pd.DataFrame({"videos": [3, 2], "queries": [4, 2]}, index=pd.Index(["train", "test"], name="split"))
    stats = {
        "splits": {
            "train": {"videos": 4, "queries": 4, "dropped": {"order": 1, "context": 2}},
            "test": {"videos": 2, "queries": 2, "dropped": {}},
        }
    }
    counts = tables.split_counts(stats, summary)
    assert counts.loc["train"].tolist() == [4, 3, 1, 4, 3] and counts.loc["test"].tolist() == [2, 2, 0, 2, 0]
    queries = pd.DataFrame({"split": ["test", "test"], "desc_id": ["a", "b"], "ratio": [0.1, 0.5]})
    first = text.data_findings(counts, queries, None)
    assert first[0] == "6 videos (train 4, test 2) with 6 queries."
    assert first[1].startswith("1 of them have no query and are in no gallery") and "3 probes" in first[1]
    assert "galleries hold train 3, test 2 videos" in first[1]
    stats["splits"]["test"]["queries"] = 5
    with pytest.raises(DataError, match="split test has 5 queries, its annotations 2"):
        tables.split_counts(stats, summary)
    assert tables.split_counts({}, summary)["left out"].tolist() == [0, 0]  # no stats.json: nothing known left out
    real = tables.split_counts({}, summary, {"train": 3, "test": 1})  # a real dataset: the frame cache's videos
    assert real["in gallery"].tolist() == [3, 1] and real["left out"].tolist() == [0, 1]


def test_evaluated_epochs_come_from_the_pooled_runs(tmp_path):
    (tmp_path / "full.json").write_text(json.dumps({"runs": ["full-s43", "full-s42"], "epoch": [7, 9]}))
    assert tables.evaluated_epochs(["full"], [42, 43], tmp_path) == {"full": [9, 7]}
    with pytest.raises(DataError, match="no run full-s44"):
        tables.evaluated_epochs(["full"], [44], tmp_path)
    (tmp_path / "full.json").write_text(json.dumps({"runs": ["full-s42"], "epoch": 9}))
    with pytest.raises(DataError, match="expected lists 'runs' and 'epoch'"):
        tables.evaluated_epochs(["full"], [42], tmp_path)


def test_seed_curves_mark_each_seeds_evaluated_epoch():
    runs = pd.DataFrame(
        [
            {"variant": v, "seed": s, "epoch": e, "loss": 10 * s + e}
            for v in ("a", "b")
            for s in (1, 2)
            for e in (1, 2, 3)
        ]
    )
    logs = runs.drop(columns="seed").groupby(["variant", "epoch"], sort=False).mean().reset_index()
    fig = figures.plot_seed_curves(logs, runs, {"a": [3, 1], "b": [2, 2]}, "loss", "loss", "t")
    marked = [
        (line.get_xdata().tolist(), line.get_ydata().tolist())
        for line in fig.axes[0].get_lines()
        if line.get_linestyle() == "None"
    ]
    assert marked == [([3], [13]), ([1], [21])]  # seed 1 at epoch 3, seed 2 at epoch 1, on their own curves
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"] and not fig.axes[2].axison


def test_chance_lines_where_a_metric_has_one():
    assert tables.chance_sumr([1, 5, 10, 100], 50) == pytest.approx(100 * (1 + 5 + 10 + 50) / 50)
    table = pd.DataFrame({"v": [60.0], "lo": [50.0], "hi": [70.0]}, index=["order"])
    fig = figures.plot_intervals(table, "v", "lo", "hi", "t", "pairwise", chance=(50.0, "chance (50%)"))
    ax = fig.axes[0]
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_label() == "chance (50%)"] == [50.0]


def test_frame_strip_numbers_events_and_queries_and_writes_them_out():
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    fig = figures.frame_strip(
        frames,
        [1.0, 3.0, 5.0, 7.0],
        8.0,
        [(0.0, 4.0, "a red ring"), (4.0, 8.0, "a blue bar")],
        [(1.0, 3.0, "a red ring is small")],
        "v",
    )
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["E1", "E2", "Q1"]
    written = "\n".join(t.get_text() for t in fig.axes[2].texts)
    assert "E2  4.0-8.0 s: a blue bar" in written and "\u201ca red ring is small\u201d" in written
    extents = [im.get_extent()[:2] for im in fig.axes[1].images]  # each frame over its own 2 s segment
    assert [round((a + b) / 2, 6) for a, b in extents] == [1.0, 3.0, 5.0, 7.0]


def test_variant_glossary_roles_from_params():
    glossary = tables.variant_glossary(
        REPO / "params.yaml",
        ["full", "depth1", "seqconv", "no_adapters"],
        ["zs_meanpool"],
        {"depth": ["depth1", "full"], "beyond_paper": ["full", "seqconv"]},
        "propy.model.network",
    )
    assert glossary["role"].to_dict() == {
        "full": "reference: every ablation is compared with it",
        "depth1": "ablation (depth)",
        "seqconv": "positive control",
        "no_adapters": "compared method",
        "zs_meanpool": "zero-shot baseline (no training)",
    }
    assert glossary.loc["depth1", "meaning"].startswith("model.pyramid = [0] (1 level, ")
    assert "mean of its frame embeddings" in glossary.loc["zs_meanpool", "meaning"]  # MeanPoolCLIP's docstring
    html = text.glossary_html(glossary)
    assert html.startswith('<div id="glossary"') and all(f"<b>{term}</b>" in html for term in text.GLOSSARY_TERMS)


def test_kind_meanings_are_read_from_the_source_without_importing_torch():
    """The glossary's meaning of a kind is its class's docstring, read from the source: importing
    propy.model.network would load torch and open_clip, seconds on every render of the index page."""
    code = (
        "import sys; from propy.reports import tables; "
        "print(tables._kind_meaning('meanpool', 'propy.model.network')); "
        "print(sorted({'torch', 'open_clip', 'torchvision'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    meaning, loaded = done.stdout.splitlines()
    first = network.MeanPoolCLIP.__doc__.strip().splitlines()[0].rstrip(".")
    assert meaning.lower() == first.lower() and len(meaning) > 20 and loaded == "[]"
    assert tables._kind_meaning("nosuchkind", "propy.model.network") == ""
    with pytest.raises(DataError, match="propy.model.nosuch: no such module"):
        tables._kind_meaning("full", "propy.model.nosuch")


def test_masks_only_for_the_interactions_the_study_trains():
    used = tables.study_interactions(REPO / "params.yaml", ["full", "ia_none", "single_event", "seqconv", "depth1"])
    assert used == {"full": ["full", "depth1"], "none": ["ia_none"]}
    caption = text.masks_caption(4, used)
    assert "<b>full</b> (full, depth1): ADI" in caption and "<b>dense</b>" not in caption


def test_an_encoder_much_faster_than_clip_is_flagged():
    from propy.reports.cost import implausible

    table = pd.DataFrame(
        {"× CLIP (wall)": [1.2, 0.5, 0.93, 1.1], "× CLIP (CPU)": [1.1, 0.6, 0.95, 0.7]},
        index=["full", "seqconv", "no_adapters", "busy"],
    )
    problems = implausible(table)
    assert len(problems) == 2 and problems[0].startswith("seqconv encodes at 0.50x CLIP's wall time and 0.60x")
    assert problems[1].startswith("busy")  # a plausible wall ratio, an implausible CPU one


GAP_SWEEP = {
    "variant": "full",
    "seed": 42,
    "split": "val",
    "least": 2,
    "tolerance": 5.0,
    "zero_shot": ["zs_maxframe"],
    "rows": [
        {
            "gap": 0,
            "zero_shot_accuracy": 95.0,
            "zs_maxframe_val_SumR": 250.0,
            "trained_val_SumR": 240.0,
            "best_epoch": 8,
        },
        {
            "gap": 2,
            "zero_shot_accuracy": 60.0,
            "zs_maxframe_val_SumR": 150.0,
            "trained_val_SumR": 220.0,
            "best_epoch": 9,
        },
        {
            "gap": 3,
            "zero_shot_accuracy": 30.0,
            "zs_maxframe_val_SumR": 90.0,
            "trained_val_SumR": 150.0,
            "best_epoch": 9,
        },
    ],
    "chosen": 2,
}


def test_gap_sweep_table_and_findings_mark_the_rule_and_the_study(tmp_path):
    path = tmp_path / "gap_sweep.json"
    path.write_text(json.dumps(GAP_SWEEP))
    table = tables.gap_sweep_table(path, used=0)
    assert list(table.index) == [0, 2, 3]
    assert table.loc[2, "rule"] == "◀ chosen" and table.loc[0, "used by the study"] == "◀ used"
    assert table.loc[3, "a caption at this gap"] == "a photo of a crimson disc, west, large"
    assert table.loc[2, "zs_maxframe val SumR"] == 150.0 and table.loc[3, "full val SumR (trained)"] == 150.0
    text_ = text.gap_sweep_findings(str(path), used=0)
    assert "the smallest caption gap from 2 on" in text_ and "at most 5 points below gap 0's (95.0%)" in text_
    assert "It chose gap 2 (60.0%)" in text_  # the hand-made rows, not the rule's outcome on them
    assert "gap 0: zs_maxframe 250.0; trained full 240.0; gap 2: zs_maxframe 150.0; trained full 220.0" in text_
    assert "not the rule's choice 2: params.yaml disagrees" in text_
    assert "the rule's choice." in text.gap_sweep_findings(str(path), used=2)
    assert tables.gap_sweep_table(tmp_path / "absent.json", 0) is None


def test_projection_table_and_sentence_from_claims(tmp_path):
    def design(mdes):
        return [
            {"test_queries": q, "seeds": s, "n": q // 2, "mde": m}
            for (q, s), m in zip([(1000, 3), (1000, 10), (4000, 3), (4000, 10)], mdes)
        ]

    claims = [
        {"name": "depth", "metric": "pairwise", "n": 50, "mde": 16.0, "projection": design([9.0, 7.0, 8.5, 6.0])},
        {"name": "vs_msl", "metric": "SumR", "n": 188, "mde": 49.0, "projection": design([41.0, 20.0, 39.0, 18.0])},
        {"name": "skipped", "metric": "SumR", "verdict": "skipped"},
    ]
    (tmp_path / "claims.json").write_text(json.dumps({"claims": claims}))
    table = tables.projection_table(tmp_path)
    assert list(table.index) == ["depth", "vs_msl"]
    assert (
        table.loc["depth", "MDE now"] == 16.0
        and table.loc["depth", "queries now"] == 50
        and table.loc["vs_msl", "4000 queries x 10 seeds"] == 18.0
    )
    sentence = text.projection_sentence(claims, text.MDE_TARGETS)
    assert "projected to 4000 test queries (3 seeds: 8.5 to 39.0; 10 seeds: 6.0 to 18.0)" in sentence
    assert "met at 4000 queries and 10 seeds by 1 of 2 tests (depth)" in sentence


def test_learnable_sentence_says_when_no_variant_beats_chance_on_a_claims_kind():
    claims = [
        {"claim": "adapters tell order", "kind": "order", "metric": "pairwise", "verdict": "not shown"},
        {"claim": "depth", "kind": "composition", "metric": "pairwise", "verdict": "supported"},
        {"claim": "prompts", "kind": "all", "metric": "SumR", "verdict": "supported"},  # not a probe: no note
    ]
    probes = pd.DataFrame(
        [
            {"kind": "order", "variant": "full", "pairwise": 48.9, "low": 45.8, "high": 51.9},
            {"kind": "order", "variant": "seqconv", "pairwise": 51.3, "low": 48.0, "high": 54.7},
            {"kind": "composition", "variant": "full", "pairwise": 55.0, "low": 51.5, "high": 58.4},
        ]
    ).set_index("kind")
    sentence = text.learnable_sentence(claims, probes)
    assert sentence.startswith("Can the benchmark show it? No variant tells order queries")
    assert "(best: seqconv 51.3% [48.0, 54.7])" in sentence and '"adapters tell order" cannot show it' in sentence
    assert "; composition queries can be told from their rivals here (best: full 55.0% [51.5, 58.4])" in sentence
    assert "prompts" not in sentence and text.learnable_sentence(claims, None) == ""
    # the best shown is one whose interval clears chance when some does, even if another scores higher
    probes.loc["composition", "variant"] = "full"
    wider = pd.concat(
        [
            probes,
            pd.DataFrame(
                [{"kind": "composition", "variant": "msl", "pairwise": 60.0, "low": 45.0, "high": 75.0}]
            ).set_index("kind"),
        ]
    )
    assert "(best: full 55.0% [51.5, 58.4])" in text.learnable_sentence(claims, wider)
    assert "No trained variant tells order" in text.learnable_sentence(claims, probes, "trained variant")
