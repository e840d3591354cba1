"""Self-describing checkpoints: a checkpoint from another config is refused, naming the keys."""

import pytest
import torch
from conftest import layout_args, run_train, write_tiny_params

from propy.cli import main
from propy.config import load_params
from propy.errors import ConfigError, DataError
from propy.model.checkpoint import (
    differences,
    load_resume,
    load_trained,
    save_resume,
    save_trained,
)


def test_differences_name_every_changed_dotted_key():
    saved = {"model": {"interaction": "full", "pyramid": {"overlaps": [0, 1]}, "adapters": True}}
    wanted = {"model": {"interaction": "none", "pyramid": {"overlaps": [0, 1, 1]}, "adapters": True}}
    assert differences(saved, wanted) == [
        "model.interaction: checkpoint 'full', requested 'none'",
        "model.pyramid.overlaps: checkpoint [0, 1], requested [0, 1, 1]",
    ]
    assert differences(saved, saved) == []


def test_load_trained_refuses_another_config(tiny_bench, tmp_path):
    path = write_tiny_params(tmp_path / "params.yaml")
    params = load_params(path, "tiny")
    save_trained(tmp_path / "best.pt", {"w": torch.ones(2)}, params, epoch=3)
    assert load_trained(tmp_path / "best.pt", params)["epoch"] == 3
    # same tensor shapes, other interaction: would load silently without the fingerprint
    other = load_params(write_tiny_params(tmp_path / "other.yaml", {"model": {"interaction": "none"}}), "tiny")
    with pytest.raises(ConfigError, match=r"model\.interaction: checkpoint 'full', requested 'none'"):
        load_trained(tmp_path / "best.pt", other)


def test_evaluate_with_a_checkpoint_of_another_config_fails_and_writes_nothing(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    assert run_train(params, layout_args(tiny_bench), tmp_path / "m", tmp_path / "log.json", "--device", "cpu") == 0
    edited = write_tiny_params(tmp_path / "edited.yaml", {"model": {"frame_prompts": 3}})
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--params",
            str(edited),
            "--variant",
            "tiny",
            *layout_args(tiny_bench),
            "--checkpoint",
            str(tmp_path / "m" / "best.pt"),
            "--metrics",
            str(tmp_path / "metrics.json"),
            "--results",
            str(tmp_path / "results"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "model.frame_prompts: checkpoint 2, requested 3" in err and "best.pt" in err
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "results").exists()


def test_a_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="best.pt: not a readable checkpoint"):
        load_trained(bad, None)


def test_resume_modes(tmp_path):
    path = tmp_path / "last.pt"
    assert load_resume(path, "h", "auto") is None
    with pytest.raises(DataError, match="no checkpoint to resume from"):
        load_resume(path, "h", "require")
    save_resume(path, "h", {"epoch": 2})
    assert load_resume(path, "h", "auto")["epoch"] == 2
    assert load_resume(path, "h", "never") is None
    said = []
    assert load_resume(path, "other", "auto", log=said.append) is None and "starting fresh" in said[0]
    with pytest.raises(ConfigError, match="--fresh"):
        load_resume(path, "other", "require")
    path.write_bytes(path.read_bytes()[:20])  # truncated by a crash
    said.clear()
    assert load_resume(path, "h", "auto", log=said.append) is None
    assert "last.pt: unreadable" in said[0]
    with pytest.raises(DataError, match="last.pt: not a readable checkpoint"):
        load_resume(path, "h", "require")


def test_evaluate_names_a_corrupt_best_pt(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    (tmp_path / "best.pt").write_bytes(b"\x80\x04 half a pickle")
    code = main(
        [
            "evaluate",
            "--params",
            str(params),
            "--variant",
            "tiny",
            *layout_args(tiny_bench),
            "--checkpoint",
            str(tmp_path / "best.pt"),
            "--metrics",
            str(tmp_path / "metrics.json"),
            "--results",
            str(tmp_path / "results"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert f"{tmp_path / 'best.pt'}: not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()
