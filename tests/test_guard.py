"""One writer per output folder (a second run fails naming the holder's pid) and no orphan under DVC."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, layout_args, run_train, write_tiny_params

from propy.errors import DataError
from propy.runtime.locks import exclusive, lock_path

HOLD = (
    "import sys, time; from propy.runtime.locks import exclusive\nwith exclusive(sys.argv[1], 'train'):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_second_holder_fails_naming_the_pid_and_a_killed_holder_frees_the_folder(tmp_path):
    folder = tmp_path / "models" / "full-s42"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            DataError, match=rf"full-s42: another `propy train` is writing this folder \(pid {holder.pid},"
        ):
            with exclusive(folder, "train"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(folder).exists()  # SIGKILL left the file, but the kernel released the lock
    with exclusive(folder, "train"):
        assert lock_path(folder).read_text().strip() == str(os.getpid())
    assert not lock_path(folder).exists()
    assert not folder.exists() or not any(folder.iterdir())  # the lock is never inside the output


def test_train_refuses_a_folder_another_run_holds(tiny_bench, tmp_path, capsys):

    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "tiny"
    with exclusive(out, "train"):
        code = run_train(params, layout_args(tiny_bench), out, tmp_path / "log.json")
    assert code == 2
    assert f"another `propy train` is writing this folder (pid {os.getpid()}" in capsys.readouterr().err
    assert not (out / "last.pt").exists()


PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(60)
"""
CHILD = (
    "import time; from propy.runtime.locks import stop_with_parent; stop_with_parent(); "
    "print('armed', flush=True); time.sleep(60)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
@pytest.mark.parametrize("under_dvc", [True, False])
def test_a_stage_under_dvc_stops_when_its_parent_is_killed(tmp_path, under_dvc):
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    if under_dvc:
        env["DVC_STAGE"] = "train@tiny-3"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    lines = {parent.stdout.readline().strip() for _ in range(2)}  # the child's pid and its "armed", in any order
    assert "armed" in lines, lines
    child = int((lines - {"armed"}).pop())
    parent.kill()
    parent.wait()

    def gone():
        try:
            with open(f"/proc/{child}/stat") as f:
                return f.read().split(") ")[1].split()[0] == "Z"  # a zombie waiting for its reaper
        except FileNotFoundError:
            return True

    try:
        # a plain run (nohup) outlives its shell; under DVC the wait only bounds a hang
        assert _wait_for(gone, 120.0 if under_dvc else 2.0) == under_dvc
    finally:
        if not gone():
            os.kill(child, signal.SIGKILL)
