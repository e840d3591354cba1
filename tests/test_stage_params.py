"""Each stage's params file holds the values it reads after the layers are applied, so a change touches the
files (and DVC re-runs the stages) that read it and no other; a stage command reading a value its entry
does not list fails. DVC itself runs on these files in test_pipeline.py's micro study."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import yaml

from propy.config import resolve
from propy.errors import ConfigError
from propy.stage_params import stage_files, write_stage_files
from propy.stage_reads import guard

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


SOURCE = str(REPO / "params.yaml")


def changed(edit, raw: dict = RAW) -> set[str]:
    """The stage files whose values differ after ``edit(raw copy)``."""
    before, edited = stage_files(raw, SOURCE), copy.deepcopy(raw)
    edit(edited)
    after = stage_files(edited, SOURCE)
    assert set(before) == set(after)
    return {name for name in before if before[name] != after[name]}


TRAINED = [f"train-{v}.yaml" for v in RAW["study"]["trained"]]


def test_train_epochs_touches_training_pooling_and_the_training_page_only():
    def epochs(raw):
        raw["train"]["epochs"] = 5

    # msl's epochs come from its own variant entry (variants.msl.train.epochs): its file stays
    assert changed(epochs) == {*TRAINED, "pool.yaml", "report_training.yaml"} - {"train-msl.yaml"}


def test_a_dataset_override_touches_what_reads_the_key_not_every_stage():
    """The issue's case: `-S ++datasets.tvr.overrides.train.epochs=2` re-ran extract, the baselines and every
    report when stages tracked the whole `datasets.tvr` block and `presets`."""
    tvr = {**RAW, "dataset": "tvr"}

    def override(raw):
        raw["datasets"]["tvr"]["overrides"]["train"]["epochs"] = 2

    touched = changed(override, tvr)
    assert "extract.yaml" not in touched and "evaluate-zs_meanpool.yaml" not in touched
    assert not {name for name in touched if name.startswith("report_") and name != "report_training.yaml"}
    # train reads the dataset entry whole (its resume fingerprint records it), so every training is touched
    assert {*TRAINED, "pool.yaml", "report_training.yaml"} <= touched


def test_a_variant_edit_touches_that_variant_and_the_pages_that_describe_variants():
    def interaction(raw):
        raw["variants"]["ia_none"]["model"]["interaction"] = "descendants"

    touched = changed(interaction)
    assert {"train-ia_none.yaml", "pool.yaml"} <= touched
    assert "train-full.yaml" not in touched and "evaluate-zs_meanpool.yaml" not in touched
    assert "report_data.yaml" not in touched and "report_results.yaml" not in touched


def test_eval_ks_touches_evaluation_and_pooling_not_extraction():
    def ks(raw):
        raw["eval"]["ks"] = [1, 5, 10, 50]

    touched = changed(ks)
    # a trained variant's stage evaluates it (a finished training is resumed, not redone: tests/test_train.py)
    assert {"train-full.yaml", "evaluate-zs_meanpool.yaml", "pool.yaml", "report_results.yaml"} <= touched
    assert not touched & {"extract.yaml", "pretrain_clip.yaml", "features.yaml", "report_data.yaml"}


def test_files_are_written_and_a_dropped_variant_s_file_removed(tmp_path):
    write_stage_files(RAW, tmp_path, SOURCE)
    assert yaml.safe_load((tmp_path / "evaluate-zs_maxframe.yaml").read_text())["train.max_words"] == 32
    # trained variants are evaluated by their training stage: no evaluate file of their own
    assert not (tmp_path / "evaluate-full.yaml").exists() and (tmp_path / "train-full.yaml").is_file()
    smaller = copy.deepcopy(RAW)
    smaller["study"]["trained"] = [v for v in RAW["study"]["trained"] if v != "seqconv"]
    smaller["study"]["ablations"]["beyond_paper"] = ["full"]
    write_stage_files(smaller, tmp_path, SOURCE)
    assert not (tmp_path / "train-seqconv.yaml").exists() and (tmp_path / "train-full.yaml").is_file()


def test_the_index_page_follows_params_yaml_s_comments_not_its_every_byte(tmp_path):
    """The glossary quotes params.yaml's comments: a changed comment touches the index page's file (a changed
    value elsewhere does not, as it did while the page depended on the whole file)."""
    path = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    path.write_text(text.replace("# Nf frames sampled per video", "# Nf frames per video"))
    before, after = stage_files(RAW, SOURCE), stage_files(RAW, str(path))
    assert before["report_index.yaml"]["comments"]["model.num_frames"] == "Nf frames sampled per video"
    assert {name for name in before if before[name] != after[name]} == {"report_index.yaml"}


def test_a_command_reading_an_unlisted_value_fails_naming_it():
    params = guard(resolve(RAW, "full"), "evaluate")
    assert params.train.max_words == 32 and params.eval.ks == [1, 5, 10, 100]
    with pytest.raises(ConfigError, match=r"the evaluate stage reads train\.epochs, which .*READS\['evaluate'\]"):
        params.train.epochs  # noqa: B018
    with pytest.raises(ConfigError, match=r"reads synth,"):
        params.synth  # noqa: B018
    extract = guard(resolve(RAW), "extract")
    assert extract.data.video_ext == ".mp4" and extract.dataset == "synthetic"
    with pytest.raises(ConfigError, match=r"reads data\.preset"):
        extract.data.preset  # noqa: B018


def test_guarded_params_survive_pickling_for_ddp_workers():
    params = pickle.loads(pickle.dumps(guard(resolve(RAW, "full"), "train")))
    assert params.train.epochs == RAW["train"]["epochs"]
    with pytest.raises(ConfigError, match="reads study"):
        params.study  # noqa: B018
