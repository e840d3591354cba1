"""params.yaml and its validation: the repo's file loads in every variant and dataset, and every
kind of mistake fails with the dotted path of the key (through `propy check-params` too)."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from propy import config
from propy.cli import main
from propy.config import TRAINED_KINDS, load_params, resolve
from propy.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def edited(**changes) -> dict:
    """A deep copy of the repo's params with dotted keys replaced (``model__interaction=...``)."""
    raw = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = raw
        for key in path:
            node = node[key]
        node[last] = value
    return raw


@pytest.mark.parametrize("dataset", sorted(RAW["datasets"]))
def test_every_variant_of_every_dataset_resolves(dataset):
    raw = edited(dataset=dataset)
    for variant in [None, *raw["variants"]]:
        params = resolve(raw, variant=variant)
        assert params.variant == variant and params.dataset == dataset


def test_repo_params_file_lists_every_field_of_every_block():
    """params.yaml documents every setting: each block has exactly its dataclass' fields."""
    blocks = {"synth": config.SynthConfig, "extract": config.ExtractConfig, "clip": config.ClipConfig,
              "pretrain_clip": config.PretrainClipConfig, "model": config.ModelConfig,
              "train": config.TrainConfig, "eval": config.EvalConfig, "study": config.StudyConfig,
              "report": config.ReportConfig}
    for block, cls in blocks.items():
        assert set(RAW[block]) == {f.name for f in dataclasses.fields(cls)}, block
    assert set(RAW) == {f.name for f in dataclasses.fields(config.Params)} - {"variant"}


def test_synthetic_defaults_and_paper_settings():
    base = load_params(REPO / "params.yaml")
    assert (base.model.num_frames, base.model.pyramid.overlaps, base.clip.model) == (
        16, [0, 1, 1, 1], "configs/propy-tiny.json")
    charades = resolve(edited(dataset="charades"))
    assert (charades.model.adapter_kernel, charades.model.num_frames, charades.clip.model) == (3, 32, "ViT-B-32")
    assert charades.model.pyramid.overlaps == [0, 1, 1, 1, 1] and charades.model.pyramid.windows is None
    activitynet = resolve(edited(dataset="activitynet"))
    assert (activitynet.train.lr, activitynet.train.max_words, activitynet.model.adapter_kernel) == (1e-3, 64, 5)
    single = load_params(REPO / "params.yaml", "single_event").model
    assert single.build_pyramid().event_spans == ((0, 16),)
    # the same variant on a 32-frame dataset is still one event over every frame
    assert resolve(edited(dataset="tvr"), "single_event").model.build_pyramid().event_spans == ((0, 32),)
    no_fp = load_params(REPO / "params.yaml", "no_frame_prompts").model
    assert (no_fp.frame_prompts, no_fp.text_prompts) == (0, False)


def test_study_lists_split_trained_and_zero_shot():
    study = load_params(REPO / "params.yaml").study
    assert set(study.trained) | set(study.zero_shot) == set(RAW["variants"])
    for name in study.zero_shot:
        assert load_params(REPO / "params.yaml", name).model.kind not in TRAINED_KINDS
    assert all(set(rows) <= set(study.trained) for rows in study.ablations.values())


@pytest.mark.parametrize("raw, message", [
    (edited(model__pyramd=None), r"model: unknown key\(s\) pyramd; expected some of kind, num_frames"),
    (edited(variants__depth1={"model": {"pyramid": {"overlap": [0]}}}),
     r"variants\.depth1: model\.pyramid: unknown key\(s\) overlap"),
    (edited(model__interaction="sparse"), r"model\.interaction: 'sparse' is not one of 'full', 'descendants'"),
    (edited(variants__zs_meanpool={"model": {"kind": "meanpol"}}),
     r"variants\.zs_meanpool: model\.kind: 'meanpol' is not one of"),
    (edited(train__epochs="3"), r"train\.epochs: expected an integer, got '3'"),
    (edited(study__trained=["full", "deph1"]), r"study\.trained: 'deph1' is not a variant; expected one of full"),
    (edited(study__ablations={"depth": ["depth1", "depht2"]}), r"study\.ablations\.depth: 'depht2' is not a variant"),
    (edited(study__trained=["full", "zs_meanpool"]),
     r"study\.trained: variant 'zs_meanpool' has model\.kind 'meanpool'; expected a trained kind \(propy, seqconv\)"),
    (edited(report__headline="ful"), r"report\.headline: 'ful' is not a variant"),
    (edited(variants__deep={"model": {"pyramid": {"overlaps": [0, 1, 1, 1, 1]}}}),
     r"variants\.deep: model: pyramid: 5 overlap flags given, but 16 = 2\^4 frames allow at most 4 levels"),
    (edited(variants__odd={"model": {"pyramid": {"windows": [[3, 2]], "overlaps": None}}}),
     r"variants\.odd: model: pyramid level 1: \(n - c\) / o \+ 1 = \(16 - 3\) / 2 \+ 1 is not an integer"),
    (edited(variants__both={"model": {"pyramid": {"windows": [[16, 1]]}}}),
     r"variants\.both: model\.pyramid: give exactly one of 'windows' or 'overlaps'"),
    (edited(variants__bad={"data": {}}), r"variants\.bad: cannot override data"),
])
def test_mistakes_name_the_dotted_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        resolve(raw)


def run_check(tmp_path, raw, *extra):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return main(["check-params", "--params", str(path), *extra])


def test_check_params_prints_every_variant(tmp_path, capsys):
    assert run_check(tmp_path, RAW) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "4 levels, 19 events" in lines["full"] and "(base)" in lines["full"]
    assert "1 levels, 8 events" in lines["depth1"] and "model.pyramid.overlaps=[0]" in lines["depth1"]
    assert "1 levels, 1 events" in lines["single_event"]
    assert "zero-shot" in lines["zs_maxframe"] and "model.kind=maxframe" in lines["zs_maxframe"]
    assert lines["ok:"].startswith(f"ok: {len(RAW['variants'])} variants valid")


def test_check_params_resolves_one_variant_of_another_dataset(tmp_path, capsys):
    assert run_check(tmp_path, RAW, "--dataset", "charades", "--variant", "depth2") == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["pyramid"]["overlaps"] == [0, 1]
    assert (resolved["model"]["num_frames"], resolved["model"]["adapter_kernel"]) == (32, 3)
    assert resolved["variant"] == "depth2"


def test_check_params_error_is_one_line_with_exit_2(tmp_path, capsys):
    assert run_check(tmp_path, edited(variants__ia_none={"model": {"interaction": "nothing"}})) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "variants.ia_none: model.interaction: 'nothing' is not one of" in err
    assert main(["check-params", "--params", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: no such parameters file" in capsys.readouterr().err
