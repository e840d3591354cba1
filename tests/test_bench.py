"""``propy bench`` runs on the tiny benchmark and writes every figure (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from propy.cli import main
from tests.conftest import layout_args, write_tiny_params

POSITIVE = [
    "train_steps_per_s",
    "gallery_videos_per_s",
    "queries_per_s",
    "propy_encode_s",
    "clip_encode_s",
    "propy_over_clip",
    "peak_rss_mb",
]


def test_bench_writes_every_figure(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--params",
            str(params),
            "--variant",
            "tiny",
            "--device",
            "cpu",
            *layout_args(tiny_bench),
            "--steps",
            "2",
            "--repeats",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["variant"] == "tiny" and result["device"] == "cpu"
    assert (result["gallery_split"], result["gallery_videos"], result["num_frames"]) == ("val", 4, 4)
    assert result["queries"] == result["gallery_videos"]  # one probe query per video of the v2 benchmark
    for key in POSITIVE:
        assert result[key] > 0, key
    assert result["propy_over_clip"] == pytest.approx(result["propy_encode_s"] / result["clip_encode_s"])
    assert "peak_cuda_mb" not in result
    assert "ProPy encode_video / CLIP encode_image" in capsys.readouterr().out


def test_bench_refuses_a_zero_shot_variant(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    assert (
        main(
            [
                "bench",
                "--params",
                str(params),
                "--variant",
                "zs_meanpool",
                *layout_args(tiny_bench),
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 2
    )
    assert "bench times ProPy" in capsys.readouterr().err


def test_bench_search_times_every_size(tmp_path, capsys):
    out = tmp_path / "bench_search.json"
    assert (
        main(["bench", "--search", "30", "200", "--events", "5", "--dim", "8", "--queries", "3", "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert [row["videos"] for row in result["sizes"]] == [30, 200]
    for row in result["sizes"]:
        assert row["events"] == row["videos"] * 5
        assert row["index_mb"] * 2**20 > row["videos"] * 5 * 8 * 4  # the float32 matrix plus the manifest
        assert 0 < row["query_ms_min"] <= row["query_ms_median"] <= row["query_ms_p95"]
        assert row["load_s"] > 0
    assert "search 200 videos x 5 events x 8" in capsys.readouterr().out


def test_bench_output_defaults_outside_every_stage(tiny_bench, tmp_path, monkeypatch):
    """`propy bench` without --out writes under logs/, which no stage reads: `dvc status` stays clean."""
    import yaml

    import propy.evaluation.bench
    from tests.conftest import REPO

    params = write_tiny_params(tmp_path / "params.yaml")
    figures = {key: 1.0 for key in POSITIVE}
    figures.update(variant="tiny", device="cpu", threads=1, train_batch_videos=4, encode_batch_videos=4, num_frames=4)
    monkeypatch.setattr(propy.evaluation.bench, "bench", lambda *a: figures)  # the timing itself is tested above
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--params", str(params), "--variant", "tiny", *layout_args(tiny_bench)]) == 0
    assert main(["bench", "--search", "10", "--events", "2", "--dim", "4", "--queries", "1"]) == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "logs").iterdir())
    assert written == ["logs/bench.json", "logs/bench_search.json"]
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    paths = [
        str(p if isinstance(p, str) else next(iter(p)))
        for s in stages.values()
        for key in ("deps", "outs")
        for p in s.get("do", s).get(key, [])
    ]
    assert not [p for p in paths for out in written if out.startswith(p.rstrip("/") + "/") or out == p]
