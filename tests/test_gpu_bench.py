"""``propy bench --profile``: the GPU benchmark's whole path on the CPU with the tiny profile (no timing asserts)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from propy.cli import main
from propy.config import read_params
from propy.data.annotations import load_annotations
from propy.errors import ConfigError
from propy.evaluation import gpu_bench
from tests.conftest import REPO


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One `propy bench --profile tiny` on the CPU, its synthetic set kept in ``work``."""
    root = tmp_path_factory.mktemp("gpu_bench")
    code = main(
        [
            "bench",
            "--profile",
            "tiny",
            "--device",
            "cpu",
            "--workers",
            "0",
            "--work",
            str(root / "work"),
            "--params",
            str(REPO / "params.yaml"),
            "--out",
            str(root / "bench.json"),
            "--md",
            str(root / "bench.md"),
        ]
    )
    assert code == 0
    return root, json.loads((root / "bench.json").read_text())


def test_every_batch_size_times_one_epoch(tiny_run):
    _, result = tiny_run
    assert [row["batch_videos"] for row in result["train"]] == [2, 4]
    assert [row["steps"] for row in result["train"]] == [4, 2]  # 8 training videos
    for row in result["train"]:
        assert row["timed_steps"] == row["steps"] - 1
        assert row["amp_dtype"] == "float32"  # CPU training runs in fp32
        assert row["videos_per_s"] * row["step_s"] == pytest.approx(row["batch_videos"])  # full batches
        assert row["frames_per_s"] == pytest.approx(4 * row["videos_per_s"])  # Nf = 4
        assert 0 <= row["data_wait_share"] <= 1 and row["first_batch_wait_s"] >= 0
        assert 0 < row["epoch_videos_per_s"] and row["loss_first"] > 0
        assert "peak_cuda_mb" not in row
    ev = result["eval"]
    assert (ev["gallery_videos"], ev["queries"]) == (4, 12)  # 4 validation videos, 3 queries each
    assert ev["gallery_videos_per_s"] > 0 and ev["compute_videos_per_s"] > 0


def test_amp_and_fp32_take_the_same_steps(tiny_run):
    _, result = tiny_run
    amp = result["amp"]
    assert (amp["steps"], amp["batch_videos"], amp["amp_dtype"]) == (2, 4, "bfloat16")  # CPU autocast
    assert len(amp["loss_amp"]) == len(amp["loss_fp32"]) == 2
    relative = [abs(a - f) / f for a, f in zip(amp["loss_amp"], amp["loss_fp32"])]
    assert amp["relative_loss_diff_last"] == pytest.approx(relative[-1])
    assert amp["relative_loss_diff_max"] == pytest.approx(max(relative))
    assert amp["within_target"] == (relative[-1] <= 1e-3)
    assert 0 < relative[0] < 0.05  # bf16 changes the loss a little, not wholesale
    assert 0.9 < amp["grad_first_step"]["cosine"] <= 1.0  # the same weights: nearly the same gradient


def test_the_set_has_the_profile_shape_and_is_reused(tiny_run):
    root, result = tiny_run
    work = root / "work"
    profile = gpu_bench.PROFILES["tiny"]
    records = load_annotations(work / "synthetic" / "annotations" / "train.jsonl")
    videos = {r.vid_name for r in records}
    assert len(videos) == 8 and len(records) == 8 * 3
    assert all(abs(r.duration - 8.0) < 1.5 and 0 <= r.ts[0] < r.ts[1] <= r.duration for r in records)
    manifest = json.loads((work / "cache" / "train" / "manifest.json").read_text())
    assert (manifest["size"], manifest["fps"], manifest["jpeg_quality"]) == (32, 3.0, 90)  # the paper's extract
    assert result["set"]["folder"] == str(work)
    video = work / "synthetic" / "videos" / "train0.mp4"
    before = video.stat().st_mtime_ns
    params = gpu_bench.bench_params(read_params(REPO / "params.yaml"), profile, 2, True, 0, "params.yaml")
    gpu_bench.make_set(profile, params, work, 0)
    assert video.stat().st_mtime_ns == before  # same settings: nothing re-made


def test_markdown_has_a_row_per_batch_size(tiny_run):
    root, _ = tiny_run
    text = (root / "bench.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| 2 |", "| 4 |"))]
    assert len(rows) == 2 and all(row.count("|") == 11 for row in rows)
    assert "AMP (bfloat16) against fp32, batch 4, 2 steps" in text


def test_bench_params_are_the_paper_setting_with_random_weights():
    params = gpu_bench.bench_params(
        read_params(REPO / "params.yaml"), gpu_bench.PROFILES["tvr"], 48, True, 15, "params.yaml"
    )
    assert (params.clip.model, params.clip.pretrained) == ("ViT-B-32-quickgelu", "")
    assert (params.model.num_frames, params.model.adapter_width, params.model.event_pyramid.num_events) == (32, 384, 42)
    assert (params.train.batch_videos, params.train.num_workers, params.train.amp, params.train.lr) == (
        48,
        15,
        True,
        8e-4,
    )
    assert (params.extract.fps, params.extract.max_frames, params.extract.jpeg_quality) == (3.0, 128, 90)


def test_a_tvr_video_is_about_76_seconds_of_4_second_events():
    cfg = gpu_bench.synth_config(gpu_bench.PROFILES["tvr"], 3)
    assert cfg.events_per_video == [19, 19] and cfg.fps == 3
    assert cfg.event_seconds == pytest.approx([3.2, 4.8])  # 19 x 4 s = 76 s on average


def test_caption_queries_spread_over_each_video():
    rows = [
        {"vid_name": "a", "split": "train", "start": float(i), "end": i + 1.0, "caption": f"c{i}"} for i in range(5)
    ]
    rows += [
        {"vid_name": "b", "split": "train", "start": 0.0, "end": 2.0, "caption": "only"},
        {"vid_name": "c", "split": "val", "start": 0.0, "end": 1.0, "caption": "other split"},
    ]
    records = gpu_bench.caption_queries(rows, "train", 3)
    assert [(r.vid_name, r.desc_id, r.desc, r.ts) for r in records] == [
        ("a", "a#q0", "c0", (0.0, 1.0)),
        ("a", "a#q1", "c2", (2.0, 3.0)),
        ("a", "a#q2", "c4", (4.0, 5.0)),
        ("b", "b#q0", "only", (0.0, 2.0)),
    ]
    assert [r.duration for r in records] == [5.0, 5.0, 5.0, 2.0]


def test_an_odd_number_of_videos_is_refused(tmp_path):
    profile = dataclasses.replace(gpu_bench.PROFILES["tiny"], val_videos=3)
    params = gpu_bench.bench_params(read_params(REPO / "params.yaml"), profile, 2, True, 0, "params.yaml")
    with pytest.raises(ConfigError, match="val_videos must be even"):
        gpu_bench.make_set(profile, params, tmp_path, 0)


def test_a_batch_larger_than_half_the_videos_is_refused(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "--profile",
                "tiny",
                "--device",
                "cpu",
                "--workers",
                "0",
                "--batch-sizes",
                "8",
                "--params",
                str(REPO / "params.yaml"),
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 2
    )
    assert "batch 8: the tiny profile's 8 training videos make fewer than 2 batches" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
