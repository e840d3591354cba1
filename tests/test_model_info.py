"""`propy model-info`: pyramid, Ne, parameter counts worked out by hand, timings printed."""

from __future__ import annotations

from pathlib import Path

from conftest import write_tiny_params

from propy.cli import main

TINY = str(Path("configs/propy-tiny.json").resolve())


def test_model_info_counts_by_hand(tmp_path, capsys):
    params = write_tiny_params(
        tmp_path / "params.yaml",
        {
            "model": {
                "num_frames": 32,
                "pyramid": [0, 1, 1, 1, 1],
                "frame_prompts": 4,
                "adapter_width": 384,
                "adapter_kernel": 5,
            }
        },
    )
    assert (
        main(
            [
                "model-info",
                "--params",
                str(params),
                "--variant",
                "tiny",
                "--clip",
                TINY,
                "--batch",
                "1",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "pyramid: 32 frames, 5 levels, 42 events" in out
    assert "level 1: 16 events" in out and "Ne = 42 events per video" in out
    # width 64, patch 8, 3 blocks; Nvp 4; adapter width 384, kernel 5 in the first 2 blocks
    adapter = (64 * 384 + 384) + (384 * 5 + 384) + (384 * 64 + 64)
    expected = {
        "event_prompts": 42 * 64,
        "frame_prompts": 3 * 4 * 64,
        "text_prompts": 64 * 64 + 64,
        "adapters": 2 * adapter,
    }
    for name, count in expected.items():
        assert f"{name:34s} {count:>12,d}  trainable" in out
    assert f"total trainable {'':18s} {sum(expected.values()):>12,d}" in out
    assert "ratio propy/clip = " in out


def test_a_missing_params_file_is_an_error(tmp_path, capsys):
    assert main(["model-info", "--params", str(tmp_path / "absent.yaml"), "--clip", TINY]) == 2
    assert "absent.yaml: no such parameters file" in capsys.readouterr().err
