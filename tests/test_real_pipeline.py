"""`dvc repro` on a real-format dataset (marked ``pipeline``): the pipeline up to pooling with ``dataset: tvr``
on the TVR-shaped data of tests/real_format.py with MS-SL, quietly, and a replaced weights file re-runs the
stages that load CLIP (DVC cannot see the preset's clip.pretrained; they depend on weights/)."""

from __future__ import annotations

import subprocess

import pytest
import torch
import yaml
from conftest import write_openai_archive
from real_format import params, prepare
from test_pipeline import copy_repo, dvc

from propy.model.backbone import create_clip

pytestmark = [pytest.mark.pipeline, pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.mark.pipeline
def test_real_dataset_pipeline_and_weights_dependency(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_repo(repo)
    paths = prepare(repo)
    raw = params(paths["config"].relative_to(repo))
    # MS-SL alone (its features stage too): ProPy's DVC stages run in the synthetic micro study, and ProPy on
    # this data in tests/test_real_path.py; every stage costs seconds of start-up
    raw["study"].update(trained=["msl"], ablations={"prior_method": ["msl"]})
    raw["report"]["headline"] = "msl"
    raw["claims"]["tests"] = {"vs_meanpool": {**raw["claims"]["tests"]["vs_meanpool"], "variant": "msl"}}
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    if not (repo / ".dvc").is_dir():
        dvc(repo, "init", "-q")

    # up to the pooled metrics: the reports' stages are the same code as in the synthetic micro study
    first = dvc(repo, "repro", "pool@tvr")
    assert (repo / "metrics" / "tvr" / "pooled" / "msl.json").is_file()
    assert (repo / "data" / "features" / "tvr" / "test" / "manifest.json").is_file()
    assert "is empty" not in first
    assert "Running stage 'train@tvr-msl-42'" in first

    torch.manual_seed(1)  # other weights, same path
    write_openai_archive(create_clip(str(paths["config"])).state_dict(), repo / "weights" / "ViT-B-32.pt")
    status = dvc(repo, "status")
    assert (
        "features@tvr" in status
        and "train@tvr-msl-42" in status
        and "baselines@tvr-zs_meanpool" in status
        and "extract" not in status.split(":")[0]
    )
