"""`dvc exp run -S` and params.yaml: DVC rewrites the file to set a key, and params.yaml is written in the
form that rewrite keeps, so an experiment changes only the lines of the key it sets; `--queue` leaves
the file as it is. Real `dvc` on a one-stage pipeline that reads the repo's params.yaml."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


# The one stage: fails when train.epochs is over 100 (a failed experiment)
STAGE = (
    "import sys, yaml; epochs = yaml.safe_load(open('params.yaml'))['train']['epochs']; "
    "open('out.txt', 'w').write(str(epochs)); sys.exit(epochs > 100)"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC project holding the repo's params.yaml and Makefile and one stage that tracks two keys."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".gitignore").write_text("/.params.yaml.before\n")
    (tmp_path / "dvc.yaml").write_text(
        f'stages:\n  echo:\n    cmd: python -c "{STAGE}"\n'
        "    params: [train.epochs, datasets.tvr.overrides]\n    outs: [out.txt]\n"
    )
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    run(tmp_path, "git", "add", "-A")
    run(tmp_path, "git", "commit", "-qm", "init")
    return tmp_path


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.pipeline
def test_an_experiment_changes_only_the_key_it_sets(repo):
    before = (repo / "params.yaml").read_text()
    run(repo, sys.executable, "-m", "dvc", "exp", "run", "-S", "train.epochs=5")
    after = (repo / "params.yaml").read_text()
    assert changed_lines(before, after) == [
        next(f"-{line}" for line in before.splitlines() if line.startswith("  epochs: 10 ")),
        next(f"+{line}" for line in after.splitlines() if line.startswith("  epochs: 5 ")),
    ]
    run(repo, "git", "checkout", "params.yaml")  # the README's way back after a workspace experiment
    run(repo, sys.executable, "-m", "dvc", "exp", "run", "-S", "++datasets.tvr.overrides.train.epochs=2")
    lines = changed_lines(before, (repo / "params.yaml").read_text())
    assert lines == [
        "-    overrides: {train: {lr: 8.0e-4, max_words: 32}}",
        "+    overrides: {train: {lr: 8.0e-4, max_words: 32, epochs: 2}}",
    ]


@pytest.mark.pipeline
def test_a_queued_experiment_leaves_params_yaml_untouched(repo):
    before = (repo / "params.yaml").read_bytes()
    run(repo, sys.executable, "-m", "dvc", "exp", "run", "--queue", "-S", "train.epochs=5")
    assert (repo / "params.yaml").read_bytes() == before
    assert "Queued" in run(repo, sys.executable, "-m", "dvc", "queue", "status")
    run(repo, sys.executable, "-m", "dvc", "queue", "remove", "--all")


def test_params_yaml_is_in_the_form_dvc_writes(tmp_path):
    """Setting a key to the value it has (through the function `dvc exp run -S` calls) gives the same bytes:
    a flow list at block level, a `null`, a value wider than DVC's line or a comment right after a list
    would each be rewritten (and a comment moved or lost) by every experiment."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    apply_overrides(path, ["dataset=synthetic"])
    lines = changed_lines((REPO / "params.yaml").read_text(), path.read_text())
    assert not lines, "DVC's rewrite of params.yaml changes:\n" + "\n".join(lines[:20])


@pytest.mark.pipeline
def test_make_exp_restores_params_yaml_when_the_experiment_fails(repo):
    """`make exp S=...` (the Makefile's target, with this project's virtual environment): a failed run puts
    params.yaml back byte for byte; a successful one leaves the set value, as `dvc exp run -S` does."""
    venv = Path(sys.executable).parent.parent
    make = ["make", "-s", f"VENV={venv}", "-o", str(venv / ".installed"), "exp"]
    before = (repo / "params.yaml").read_bytes()
    env = {**os.environ, **GIT, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    failed = subprocess.run([*make, "S=train.epochs=500"], cwd=repo, env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "params.yaml restored" in failed.stdout + failed.stderr
    assert (repo / "params.yaml").read_bytes() == before and not (repo / ".params.yaml.before").exists()
    run(repo, *make, "S=train.epochs=5")
    assert changed_lines(before.decode(), (repo / "params.yaml").read_text())[1].startswith("+  epochs: 5 ")
