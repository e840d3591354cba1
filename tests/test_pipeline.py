"""The DVC pipeline: code deps match the imports, and the whole study runs on a micro profile.

The end-to-end test (marked ``pipeline``; deselect with ``-m "not pipeline"``) copies the
repo to a temporary directory, shrinks params.yaml to a few videos, one epoch and two
variants, interrupts the extraction with Ctrl-C, runs real ``dvc repro`` (which resumes it)
and checks every declared output, then that a run on another dataset neither touches the
first dataset's outputs nor makes it re-run (a second ``dvc repro`` then runs nothing), and
which stages a params change or new CLIP weights make stale.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import real_format
import torch
import yaml
from conftest import write_openai_archive

from propy.cli import COMMANDS
from propy.model.backbone import create_clip
from propy.stage_reads import READS

REPO = Path(__file__).resolve().parents[1]
# Dispatch, exception classes and the packages' docstring-only __init__ files: editing them cannot
# change a stage's result, and listing them would re-run the whole study whenever a command is added.
NOT_DEPS = {
    "propy/__main__.py",
    "propy/cli.py",
    "propy/errors.py",
    *(p.relative_to(REPO).as_posix() for p in (REPO / "propy").rglob("__init__.py")),
}


def _module_file(name: str) -> str | None:
    base = REPO / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.relative_to(REPO).as_posix()
    return None


def _imports(source: str) -> set[str]:
    """Every ``propy`` module a source imports (at any depth: function-level imports count)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "propy")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "propy":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}"))
    return found


def _closure(sources: list[str]) -> set[str]:
    todo = [m for s in sources for m in _imports(s)]
    files: set[str] = set()
    while todo:
        path = _module_file(todo.pop())
        if path and path not in files:
            files.add(path)
            todo.extend(_imports((REPO / path).read_text()))
    return files - NOT_DEPS


def _stages() -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage by its ``do`` body."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _read_modules(source: str) -> set[str]:
    """The files of the ``propy`` modules a source names as a string ("propy.model.network"): a notebook
    reads such a module's source (its docstrings) without importing it, so the file is a dep, its
    imports are not."""
    names = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("propy.")
    }
    return {path for path in map(_module_file, names) if path}


def _expected_code_deps(stage: str) -> set[str]:
    """The propy/ and notebooks/ files a stage's command runs: the import closure of its command module
    and, for a report, of its notebook's cells, plus the notebook and the modules it reads."""
    words = _stages()[stage]["cmd"].split()
    assert words[:3] == ["python", "-m", "propy"], words
    sources = [f"import {COMMANDS[words[3]][0]}"]
    if words[3] != "report":
        return _closure(sources)
    notebook = REPO / "notebooks" / f"{words[4]}.ipynb"
    cells = [
        c.source.replace("%matplotlib inline", "") for c in nbformat.read(notebook, 4).cells if c.cell_type == "code"
    ]
    return (
        _closure(sources + cells) | {path for c in cells for path in _read_modules(c)} | {f"notebooks/{words[4]}.ipynb"}
    )


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_code_deps_are_exactly_the_imported_modules(stage):
    expected = _expected_code_deps(stage)
    declared = {d for d in _stages()[stage]["deps"] if d.startswith(("propy/", "notebooks/"))}
    assert declared == expected, f"missing {sorted(expected - declared)}, extra {sorted(declared - expected)}"


# Which params.yaml key each notebook parameter comes from (propy.reports.render.notebook_values).
PARAM_SOURCES = {
    "dataset": "dataset",
    "caption_gap": "pretrain_clip.caption_gap",
    "trained": "study.trained",
    "zero_shot": "study.zero_shot",
    "ablations": "study.ablations",
    "headline": "report.headline",
    "top_k": "report.top_k",
    "num_frames": "model.num_frames",
    "seeds": "study.seeds",
    "ks": "eval.ks",
    "ratio_bins": "eval.ratio_bins",
    "iou_thresholds": "eval.iou_thresholds",
}


@pytest.mark.parametrize("stage", sorted(s for s in _stages() if s.startswith("report_")))
def test_report_stages_track_the_params_their_notebook_declares(stage):
    body = _stages()[stage]
    notebook = nbformat.read(REPO / "notebooks" / f"{body['cmd'].split()[4]}.ipynb", 4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    declared = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
    reads = set(READS[stage]) | {"dataset"}  # the dataset's name is in every stage's params file
    needed = {PARAM_SOURCES[name] for name in declared if name in PARAM_SOURCES}
    missing = {key for key in needed if key not in reads and key.split(".")[0] not in reads}
    assert not missing, f"{stage} does not track {sorted(missing)} (propy/stage_reads.py READS)"


def test_notebooks_are_saved_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        book = nbformat.read(path, 4)
        tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


# --------------------------------------------------------------------------- end to end


def _stage_outputs(tmp_path: Path, dataset: str) -> dict[str, list[str]]:
    """Every stage of dvc.yaml with ``dataset:`` set, as DVC resolves it: its name and output paths."""
    from dvc.repo import Repo

    root = tmp_path / dataset
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**raw, "dataset": dataset}, sort_keys=False))
    (root / ".dvc").mkdir()  # a DVC project without git: enough to resolve the stages
    (root / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    with Repo(str(root)) as repo:
        return {stage.name: [str(out.def_path) for out in stage.outs] for stage in repo.index.stages}


def test_each_dataset_has_its_own_stages_and_outputs(tmp_path):
    """Switching ``dataset:`` must not overwrite the other dataset's files or dvc.lock entries: apart from
    ``synth`` (which makes the synthetic data whatever the dataset), the stage names and outputs of two
    datasets share nothing, and every output path names its dataset."""
    synthetic, tvr = _stage_outputs(tmp_path, "synthetic"), _stage_outputs(tmp_path, "tvr")
    assert synthetic.pop("synth") == tvr.pop("synth") == ["data/synthetic"]
    assert "train@synthetic-full-42" in synthetic and "report_index@tvr" in tvr
    assert not set(synthetic) & set(tvr)
    for dataset, stages in (("synthetic", synthetic), ("tvr", tvr)):
        outs = [path for paths in stages.values() for path in paths]
        assert len(outs) == len(set(outs)) and all(f"/{dataset}" in path for path in outs), dataset
    tvr_outs = {path for paths in tvr.values() for path in paths}
    assert not tvr_outs & {path for paths in synthetic.values() for path in paths}


def micro_params() -> dict:
    """The repo's params shrunk to minutes: few videos, one epoch, ProPy and MS-SL with one seed and one
    zero-shot baseline (with TVR's entry from tests/real_format.py, the second dataset of the switching check).

    Every stage costs seconds of start-up (DVC, torch, open_clip) whatever its work, so the micro study runs
    as few as reach each kind of stage once: the ablation tables run in tests/test_reports.py, the pooling
    of several seeds in tests/test_pool.py."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    tvr = real_format.params(Path("configs/tiny-quickgelu.json"))
    raw["datasets"]["tvr"] = tvr["datasets"]["tvr"]
    raw["synth"]["videos"] = {"train": 12, "val": 4, "test": 4}
    raw["extract"]["max_frames"] = 32
    raw["pretrain_clip"].update(epochs=1, batch_size=32)
    raw["train"].update(epochs=1, batch_videos=4)
    raw["eval"].update(batch_videos=8, batch_queries=64)
    raw["variants"]["msl"]["train"]["epochs"] = 1
    raw["study"] = {
        "trained": ["full", "msl"],
        "seeds": [42],
        "zero_shot": ["zs_maxframe"],
        "ablations": {"prior_method": ["full", "msl"]},
    }
    return raw


def copy_repo(dest: Path) -> None:
    """Tracked files and new files git does not ignore (the working tree, not the last commit)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def dvc(repo: Path, *args: str, timeout: float = 3600) -> str:
    """Run dvc in ``repo``; the timeout only stops a hang (a busy machine may take many times longer)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MPLBACKEND", None)  # notebooks keep their inline backend
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{output[-6000:]}"
    return output


# The page whose stage the micro study runs (with everything upstream of it): the verdicts. Every page is
# rendered on hand-made outputs in test_reports.py (the data page's frame coverage is checked on generated
# videos in test_video.py); rendering the others here too would double this, the suite's longest test.
MICRO_REPORTS = ("report_index@synthetic",)


@pytest.mark.pipeline
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit writing the TVR-format set's OpenAI archive
def test_micro_study_end_to_end(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_repo(repo)
    real_format.prepare(repo)  # a TVR-format dataset to switch to at the end (its weights/ are a dep of both)
    (repo / "params.yaml").write_text(yaml.safe_dump(micro_params(), sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    if not (repo / ".dvc").is_dir():
        dvc(repo, "init", "-q")

    # Ctrl-C in the middle of `dvc repro extract@synthetic`: the videos cached before it are kept (the
    # cache is a persistent output) and the study's repro decodes only the rest.
    done = _interrupted_extract(repo, tmp_path / "never-released", at=5)
    started = time.perf_counter()
    first = dvc(repo, "repro", *MICRO_REPORTS)
    elapsed = time.perf_counter() - started
    print(f"micro study: dvc repro {elapsed:.0f} s")
    cached = int(first.split("extract train: 12 videos")[1].split(" already cached")[0].split(", ")[-1])
    assert cached == done == 5 and f"{12 - cached} decoded" in first
    assert not list((repo / "data" / "cache").rglob(".*.tmp"))

    for run in ("full-s42", "msl-s42", "zs_maxframe"):
        metrics = json.loads((repo / "metrics" / "synthetic" / "runs" / f"{run}.json").read_text())
        assert metrics["variant"] == run.split("-s")[0] and 0.0 <= metrics["R1"] <= metrics["R100"] <= 100.0
        assert metrics["SumR"] == pytest.approx(sum(metrics[k] for k in ("R1", "R5", "R10", "R100")))
        for out in ("breakdown.json", "rankings.jsonl", "events.npz"):
            assert (repo / "results" / "synthetic" / "runs" / run / out).stat().st_size > 0
    run = json.loads((repo / "metrics" / "synthetic" / "runs" / "full-s42.json").read_text())
    pooled = json.loads((repo / "metrics" / "synthetic" / "pooled" / "full.json").read_text())
    assert pooled["runs"] == ["full-s42"] and pooled["SumR"] == pytest.approx(run["SumR"])
    assert pooled["gallery"]["present"] == pooled["gallery"]["annotated"]  # every video was extracted
    comparisons = json.loads((repo / "metrics" / "synthetic" / "pooled" / "comparisons.json").read_text())
    (zero_shot,) = comparisons["tables"]["zero_shot"]
    assert zero_shot["variant"] == "zs_maxframe" and zero_shot["mde"] > 0
    assert zero_shot["ci"][0] <= zero_shot["delta_SumR"] <= zero_shot["ci"][1]
    claims = {
        c["name"]: c
        for c in json.loads((repo / "metrics" / "synthetic" / "pooled" / "claims.json").read_text())["claims"]
    }
    assert claims["pyramid_depth"]["verdict"] == "skipped"  # depth1 is not in the micro study
    for claim in ("vs_maxframe", "vs_msl"):
        assert claims[claim]["verdict"] in ("supported", "contradicted", "not shown"), claim
    log = json.loads((repo / "logs" / "train" / "synthetic" / "full-s42.json").read_text())
    assert [e["epoch"] for e in log] == [1] and log[0]["loss"] > 0
    assert (repo / "models" / "synthetic" / "full-s42" / "best.pt").stat().st_size > 0

    reports = repo / "reports" / "synthetic"
    for report in (name.removeprefix("report_").split("@")[0] for name in MICRO_REPORTS):
        assert "<html" in (reports / f"{report}.html").read_text()[:2000].lower()
        assert (reports / "executed" / f"{report}.ipynb").is_file()
        pngs = list((reports / "figures" / report).glob("*.png"))
        assert pngs and all(p.stat().st_size > 2000 for p in pngs), report
        assert list((reports / "tables" / report).glob("*.md")), report
    html = (reports / "index.html").read_text()
    assert all(f">{n}<" in html for n in ("full", "zs_maxframe")), "index.html lacks a variant row"
    assert "zs_maxframe" in dvc(repo, "metrics", "show")
    assert "Running stage 'report_index@synthetic'" in first
    for noise in ("without encryption", "is empty"):  # the report kernel and DVC's empty-output warning
        assert noise not in first, noise

    # Another dataset (TVR's format) in the same checkout, up to its ProPy training, then back: its stages
    # and files are its own, the synthetic study's files stay as they were and nothing of it re-runs (so a
    # second `dvc repro` runs nothing, detour or not).
    before = _snapshot(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**params, "dataset": "tvr"}, sort_keys=False))
    other = dvc(repo, "repro", "train@tvr-full-42")
    ran = {line.split("'")[1] for line in other.splitlines() if line.startswith("Running stage")}
    assert ran == {
        "stage_params@tvr",
        "extract@tvr",
        "pretrain_clip@tvr",  # skipped inside (presets.paper: pretrain_clip.enabled false)
        "features@tvr",  # every training depends on the frozen embeddings (MS-SL's input)
        "train@tvr-full-42",  # and its evaluation, in the same process
    }, other
    tvr = json.loads((repo / "metrics" / "tvr" / "runs" / "full-s42.json").read_text())
    assert tvr["variant"] == "full" and tvr["gallery"]["present"]["videos"] == 2
    assert (repo / "data" / "features" / "tvr" / "test" / "manifest.json").is_file()
    assert "is empty" not in other
    assert json.loads((repo / "metrics" / "tvr" / "pretrain_clip.json").read_text())["skipped"] is True
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    back = dvc(repo, "repro", *MICRO_REPORTS)
    assert "Running stage" not in back and "up to date" in back
    assert _snapshot(repo) == before
    assert not any("tvr" in path for path in before)  # the snapshot holds the synthetic study's files only

    # A change re-runs what reads it: train.epochs changes the params files of training (ProPy's: MS-SL sets its
    # own), pooling and the training page (not run here), so after the params stage only those of the micro
    # study are out of date. Extraction, pre-training, MS-SL and the baselines stay.
    params["train"]["epochs"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(repo, "repro", "stage_params@synthetic")
    assert _stale(dvc(repo, "status", *MICRO_REPORTS, "--with-deps")) == {"train@synthetic-full-42", "pool@synthetic"}

    # DVC sees params.yaml's raw values, not which weights file a preset picks: the stages that load CLIP
    # depend on the whole weights/ folder, so replacing presets.paper's weights file re-runs them (not extract).
    torch.manual_seed(1)
    config = repo / "configs" / "tiny-quickgelu.json"
    write_openai_archive(create_clip(str(config)).state_dict(), repo / "weights" / "ViT-B-32.pt")
    stale = _stale(dvc(repo, "status", *MICRO_REPORTS, "--with-deps"))
    assert {"features@synthetic", "train@synthetic-msl-42", "baselines@synthetic-zs_maxframe"} <= stale
    assert "extract@synthetic" not in stale


def _stale(status: str) -> set[str]:
    """The stages `dvc status` lists as changed."""
    return {line.rstrip(":") for line in status.splitlines() if line and not line[0].isspace() and line.endswith(":")}


def _snapshot(repo: Path) -> dict[str, bytes]:
    """Every file the synthetic study wrote (its data, cache, models, metrics, results, reports, logs)."""
    folders = [
        "data/synthetic",
        "data/cache/synthetic",
        "models/synthetic",
        "metrics/synthetic",
        "results/synthetic",
        "reports/synthetic",
        "logs/train/synthetic",
    ]
    return {
        str(path.relative_to(repo)): path.read_bytes()
        for folder in folders
        for path in sorted((repo / folder).rglob("*"))
        if path.is_file()
    }


def _interrupted_extract(repo: Path, release: Path, at: int) -> int:
    """Run `dvc repro extract@synthetic` held after its ``at``-th video (PROPY_HOLD, until ``release``
    exists: never), press Ctrl-C there and return how many videos its journal had recorded."""
    import signal

    journal = repo / "data" / "cache" / "synthetic" / "train" / ".journal.jsonl"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PROPY_HOLD": f"extract:{at}:{release}",
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "extract@synthetic"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # as from a terminal: a shell's background job (`cmd &`) starts with SIGINT ignored, which its
        # children would inherit, and the held extraction would never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 3600  # a bound on a hang only
        while run.poll() is None and not (journal.is_file() and len(journal.read_text().splitlines()) >= at):
            assert time.monotonic() < deadline, f"extraction never reached its video {at}"
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        output = run.communicate(timeout=3600)[0]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode != 0, f"extract finished although it was held at its video {at}:\n{output[-3000:]}"
    return len(journal.read_text().splitlines())
