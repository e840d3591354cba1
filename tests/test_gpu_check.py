"""scripts/gpu_check.sh: the GPU session's one script, run here on its CPU path (--tiny)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def run_script(tmp_path, *args):
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "GPU_CHECK_WORK": str(tmp_path / "work"),
        "PROPY_PYTHON": sys.executable,
        "GPU_CHECK_BUDGET": "3600",
    }  # a device's budget; no race here
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600, check=False
    )


def test_tiny_run_writes_the_tables_into_out(tmp_path):
    result = run_script(tmp_path, "--tiny")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_bench.json", "gpu_bench.md", "gpu_check.log"]
    bench = json.loads((out / "gpu_bench.json").read_text())
    assert bench["profile"]["name"] == "tiny" and bench["machine"]["device"] == "cpu"
    assert bench["machine"]["workers"] == 1 and bench["set"]["folder"] == str(tmp_path / "work" / "tiny")
    table = (out / "gpu_bench.md").read_text()
    assert "### propy bench, profile `tiny` on CPU" in table and "| 4 | float32 |" in table
    assert "gpu_check: tiny finished with status 0" in (out / "gpu_check.log").read_text()


def test_an_unknown_option_is_refused(tmp_path):
    result = run_script(tmp_path, "--fast")
    assert result.returncode == 2 and "usage: bash scripts/gpu_check.sh [--tiny|--wheels]" in result.stderr
