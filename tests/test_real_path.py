"""The `dataset: tvr` path as the README gives it, on a TVR-shaped dataset written by the test
(tests/real_format.py): convert (the test-public file with --missing-ts whole), split-val, weights in
each accepted format, check-params, extract, train one step, evaluate. A small CLIP stands in for
ViT-B/32 (same code path; 2 CPU cores)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from real_format import TEST, TRAIN, params, write_dataset

from propy.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit, writing the test archive

ANN = Path("data/tvr/annotations")
LAYOUT = ["--data", "data/tvr", "--cache", "data/cache"]


def write_params(raw: dict) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def train(*extra: str) -> int:
    return main(
        [
            "train",
            "--params",
            "params.yaml",
            "--variant",
            "full",
            "--seed",
            "42",
            *LAYOUT,
            "--out",
            "models/tvr/full-s42",
            "--log",
            "logs/train/tvr/full-s42.json",
            "--device",
            "cpu",
            *extra,
        ]
    )


def evaluate(variant: str, name: str, *extra: str) -> dict:
    assert (
        main(
            [
                "evaluate",
                "--params",
                "params.yaml",
                "--variant",
                variant,
                *LAYOUT,
                *extra,
                "--metrics",
                f"metrics/tvr/runs/{name}.json",
                "--results",
                f"results/tvr/runs/{name}",
            ]
        )
        == 0
    )
    return json.loads(Path(f"metrics/tvr/runs/{name}.json").read_text())


def test_real_format_dataset_end_to_end(tmp_path, monkeypatch, capsys):
    started = time.perf_counter()
    paths = write_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)

    # 1. annotations: release files -> canonical; TVR has no PRVR val split: hold out train videos
    assert main(["convert", "tvr", str(paths["train_release"]), "data/tvr/tvr_train.jsonl"]) == 0
    assert main(["convert", "tvr", str(paths["test_release"]), str(ANN / "test.jsonl"), "--missing-ts", "whole"]) == 0
    assert (
        main(
            [
                "split-val",
                "data/tvr/tvr_train.jsonl",
                "--videos",
                "1",
                "--seed",
                "0",
                "--out-train",
                str(ANN / "train.jsonl"),
                "--out-val",
                str(ANN / "val.jsonl"),
            ]
        )
        == 0
    )
    test_lines = [json.loads(line) for line in (ANN / "test.jsonl").read_text().splitlines()]
    assert {r["vid_name"] for r in test_lines} == set(TEST) and all(r["ts"] == [0.0, r["duration"]] for r in test_lines)
    assert (
        len({json.loads(line)["vid_name"] for line in (ANN / "train.jsonl").read_text().splitlines()}) == len(TRAIN) - 1
    )

    # 2. the preset's batch of 24 is more than 4 training videos: the error says where 24 comes from
    write_params(params(paths["config"], small_batch=False))
    assert main(["check-params"]) == 0
    out, err = capsys.readouterr()
    assert (
        "train.batch_videos       = 24" in out and "warning: train.batch_videos: the base value 16 is not used" in err
    )
    assert main(["extract", "--params", "params.yaml", "--data", "data/tvr", "--out", "data/cache"]) == 0
    out, err = capsys.readouterr()
    assert "extract train: 4 videos" in out and "extract train: 4/4 videos (100%)" in err  # progress in a log
    assert json.loads(Path("data/cache/train/manifest.json").read_text())["jpeg_quality"] == 90  # presets.paper
    assert train() == 2
    err = capsys.readouterr().err
    assert "train.batch_videos is 24 but the training split has only 4 videos" in err
    assert "set by presets.paper" in err and "datasets.tvr.overrides.train.batch_videos" in err

    # 3. with the override, one step of training on the OpenAI-format archive, then evaluation
    write_params(params(paths["config"]))
    assert train() == 0
    log = json.loads(Path("logs/train/tvr/full-s42.json").read_text())
    assert [(e["epoch"], e["step"]) for e in log] == [(1, 1)]
    full = evaluate("full", "full-s42", "--checkpoint", "models/tvr/full-s42/best.pt")
    assert full["dataset"] == "tvr" and full["variant"] == "full" and 0 <= full["R1"] <= full["R100"] == 100
    archive = evaluate("zs_meanpool", "zs_meanpool")
    # MS-SL on the same cached frames: their frozen CLIP embeddings once, then one step at its own lr
    assert main(["features", "--params", "params.yaml", *LAYOUT, "--out", "data/features", "--device", "cpu"]) == 0
    assert (
        main(
            [
                "train",
                "--params",
                "params.yaml",
                "--variant",
                "msl",
                "--seed",
                "42",
                *LAYOUT,
                "--features",
                "data/features",
                "--out",
                "models/tvr/msl-s42",
                "--log",
                "logs/train/tvr/msl-s42.json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert [(e["epoch"], e["step"]) for e in json.loads(Path("logs/train/tvr/msl-s42.json").read_text())] == [(1, 1)]
    assert json.loads(Path("logs/train/tvr/msl-s42.json").read_text())[0]["lr"] == pytest.approx(2.5e-4, rel=0.5)
    msl = evaluate("msl", "msl-s42", "--features", "data/features", "--checkpoint", "models/tvr/msl-s42/best.pt")
    assert msl["kind"] == "msl" and 0 <= msl["R1"] <= msl["R100"] == 100 and msl["vcmr"]

    # 4. the other accepted weight formats give the same CLIP (the archive holds float16 values)
    assert main(["convert-weights", "weights/ViT-B-32.pt", "weights/converted.pt"]) == 0
    for name, file, same in (("converted", "weights/converted.pt", True), ("plain", str(paths["plain"]), False)):
        raw = params(paths["config"])
        raw["datasets"]["tvr"]["overrides"]["clip"]["pretrained"] = file
        write_params(raw)
        metrics = evaluate("zs_meanpool", f"zs_meanpool-{name}")
        if same:
            assert {k: metrics[k] for k in ("R1", "R5", "SumR")} == {k: archive[k] for k in ("R1", "R5", "SumR")}
    # a model config with the other activation is refused, naming both
    raw = params(paths["config"])
    raw["datasets"]["tvr"]["overrides"]["clip"]["model"] = "configs/../" + str(
        paths["config"].relative_to(tmp_path)
    ).replace("tiny-quickgelu", "tiny-gelu")
    Path(raw["datasets"]["tvr"]["overrides"]["clip"]["model"]).write_text(
        json.dumps({k: v for k, v in json.loads(paths["config"].read_text()).items() if k != "quick_gelu"})
    )
    write_params(raw)
    assert (
        main(
            [
                "evaluate",
                "--params",
                "params.yaml",
                "--variant",
                "zs_meanpool",
                *LAYOUT,
                "--metrics",
                "m.json",
                "--results",
                "r",
            ]
        )
        == 2
    )
    assert "builds GELU but the weights weights/ViT-B-32.pt were trained with QUICK_GELU" in capsys.readouterr().err
    print(f"real-format smoke test: {time.perf_counter() - started:.1f} s")
