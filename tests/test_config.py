"""params.yaml and its validation: the repo's file loads in every variant and dataset, and every
kind of mistake fails with the dotted path of the key (through `propy check-params` too)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

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


def test_every_field_is_required():
    """No default in the dataclasses: a setting left out of params.yaml is an error naming it."""
    for dotted in ("train.epochs", "model.pyramid", "extract.skip_bad", "study.seeds", "report.kernel"):
        block, key = dotted.split(".")
        raw = copy.deepcopy(RAW)
        del raw[block][key]
        with pytest.raises(ConfigError, match=rf"{dotted}: missing \(expected "):
            resolve(raw)


def test_synthetic_defaults_and_paper_settings():
    base = load_params(REPO / "params.yaml")
    assert (base.model.num_frames, base.model.pyramid, base.clip.model) == (16, [0, 1, 1, 1], "configs/propy-tiny.json")
    charades = resolve(edited(dataset="charades"))
    assert (charades.model.adapter_kernel, charades.model.num_frames, charades.clip.model) == (
        3,
        32,
        "ViT-B-32-quickgelu",
    )
    assert charades.model.pyramid == [0, 1, 1, 1, 1] and charades.model.event_pyramid.num_events == 42
    activitynet = resolve(edited(dataset="activitynet"))
    assert (activitynet.train.lr, activitynet.train.max_words, activitynet.model.adapter_kernel) == (1e-3, 64, 5)
    assert (activitynet.train.epochs, activitynet.train.batch_videos) == (10, 24)  # from presets.paper
    single = load_params(REPO / "params.yaml", "single_event").model
    assert single.event_pyramid.event_spans == ((0, 16),)
    # the same variant on a 32-frame dataset is still one event over every frame
    assert resolve(edited(dataset="tvr"), "single_event").model.event_pyramid.event_spans == ((0, 32),)


def test_windows_and_overlap_flags_are_one_key():
    windows = resolve(edited(model__pyramid=[[2, 2], [2, 1], [3, 2], [3, 1]]))
    assert windows.model.event_pyramid.counts == (16, 8, 7, 3, 1)
    assert windows.model.event_pyramid == load_params(REPO / "params.yaml").model.event_pyramid
    no_fp = load_params(REPO / "params.yaml", "no_frame_prompts").model
    assert (no_fp.frame_prompts, no_fp.text_prompts) == (0, False)


def test_study_lists_split_trained_and_zero_shot():
    study = load_params(REPO / "params.yaml").study
    assert set(study.trained) | set(study.zero_shot) <= set(RAW["variants"])
    assert not set(study.trained) & set(study.zero_shot)
    for name in study.trained:
        assert load_params(REPO / "params.yaml", name).model.kind in TRAINED_KINDS
    for name in study.zero_shot:
        assert load_params(REPO / "params.yaml", name).model.kind not in TRAINED_KINDS
    assert all(set(rows) <= set(study.trained) for rows in study.ablations.values())


@pytest.mark.parametrize(
    "raw, message",
    [
        (edited(model__pyramd=None), r"model: unknown key\(s\) pyramd; expected some of kind, num_frames"),
        (edited(variants__depth1={"model": {"pyramd": [0]}}), r"variants\.depth1: model: unknown key\(s\) pyramd"),
        (edited(model__interaction="sparse"), r"model\.interaction: 'sparse' is not one of 'full', 'descendants'"),
        (
            edited(variants__zs_meanpool={"model": {"kind": "meanpol"}}),
            r"variants\.zs_meanpool: model\.kind: 'meanpol' is not one of",
        ),
        (edited(train__epochs="3"), r"train\.epochs: expected an integer, got '3'"),
        (edited(study__trained=["full", "deph1"]), r"study\.trained: 'deph1' is not a variant; expected one of full"),
        (
            edited(study__ablations={"depth": ["depth1", "depht2"]}),
            r"study\.ablations\.depth: 'depht2' is not a variant",
        ),
        (
            edited(study__trained=[*RAW["study"]["trained"], "zs_meanpool"]),
            r"study\.trained: variant 'zs_meanpool' has model\.kind 'meanpool'; "
            r"expected a trained kind \(propy, seqconv, msl\)",
        ),
        (edited(report__headline="ful"), r"report\.headline: 'ful' is not a variant"),
        (
            edited(model__pyramid=[0, 1, 1, 1, 1]),
            r"model\.pyramid: pyramid: 5 overlap flags given, but 16 = 2\^4 frames allow at most 4 levels",
        ),
        (
            edited(model__pyramid=[[3, 2]]),
            r"model\.pyramid: pyramid level 1: \(n - c\) / o \+ 1 = \(16 - 3\) / 2 \+ 1 is not an integer",
        ),
        (edited(model__pyramid=[[2, 2, 1]]), r"model\.pyramid: pyramid level 1: window must be a pair \[c, o\]"),
        (edited(model__pyramid=[0, 1.5]), r"model\.pyramid: \[0, 1\.5\] does not match"),
        (edited(train__grad_clip=-1), r"train\.grad_clip: -1\.0 is out of range; expected > 0"),
        (edited(train__batch_videos=0), r"train\.batch_videos: 0 is out of range; expected >= 1"),
        (edited(train__betas=[1.5, 2]), r"train\.betas: \[1\.5, 2\.0\] is out of range; expected >= 0 and < 1"),
        (edited(eval__ks=[0, -5]), r"eval\.ks: \[0, -5\] is out of range; expected >= 1"),
        (edited(eval__iou_thresholds=[1.5]), r"eval\.iou_thresholds: \[1\.5\] is out of range; expected > 0 and <= 1"),
        (edited(eval__ratio_bins=[0.4, 0.1]), r"eval\.ratio_bins: expected a non-empty increasing list"),
        (edited(model__adapter_width=0), r"model\.adapter_width: 0 is out of range; expected >= 1"),
        (edited(model__adapter_kernel=4), r"model\.adapter_kernel: must be odd, got 4"),
        (edited(pretrain_clip__epochs=0), r"pretrain_clip\.epochs: 0 is out of range; expected >= 1"),
        (edited(train__num_workers=-1), r"train\.num_workers: -1 is out of range; expected >= 0"),
        (
            edited(study__ablations={"depth": ["full", "zs_meanpool"]}),
            r"study\.ablations\.depth: zs_meanpool not in study\.trained",
        ),
        (edited(variants__bad={"data": {}}), r"variants\.bad: cannot override data"),
        # claims: one pre-registered test per claim
        (
            edited(claims__tests__pyramid_depth__against="depht1"),
            r"claims\.tests\.pyramid_depth\.against: 'depht1' is not a variant; expected one of full",
        ),
        (
            edited(claims__tests__pyramid_depth__variant="ful"),
            r"claims\.tests\.pyramid_depth\.variant: 'ful' is not a variant",
        ),
        (
            edited(claims__tests__pyramid_depth__metric="R1"),
            r"claims\.tests\.pyramid_depth\.metric: 'R1' is not one of 'SumR', 'pairwise', 'loc'",
        ),
        (
            edited(claims__tests__pyramid_depth__kind="compositon"),
            r"claims\.tests\.pyramid_depth\.kind: 'compositon' is not one of "
            r"appearance, order, composition, context, all",
        ),
        (
            edited(claims__tests__pyramid_depth__against="full"),
            r"claims\.tests\.pyramid_depth\.against: compares 'full' with itself",
        ),
        (edited(claims__tests={}), r"claims\.tests: expected at least one claim"),
        (edited(claims__alpha=0.0), r"claims\.alpha: 0\.0 is out of range; expected > 0 and < 1"),
        (edited(claims__power=1), r"claims\.power: 1\.0 is out of range; expected > 0 and < 1"),
        (
            edited(
                claims__tests__text_prompts={
                    "variant": "full",
                    "against": "no_text_prompts",
                    "kind": "all",
                    "metric": "SumR",
                }
            ),
            r"claims\.tests\.text_prompts\.claim: missing \(expected str\)",
        ),
    ],
)
def test_mistakes_name_the_dotted_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        for variant in [None, *raw["variants"]]:  # what check-params does
            resolve(raw, variant)


def test_a_base_block_error_is_reported_where_it_was_written():
    with pytest.raises(ConfigError, match=r"^params\.yaml: train\.lr: -0\.1 is out of range"):
        resolve(edited(train__lr=-0.1), "full")  # not "variants.full: ..."


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text() + "train:\n  epochs: 99\n")
    lines = path.read_text().splitlines()
    first = lines.index("train:") + 1
    with pytest.raises(
        ConfigError, match=rf"line {len(lines) - 1}: key 'train' is given twice \(first on line {first}\)"
    ):
        load_params(path)


def test_a_params_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes((REPO / "params.yaml").read_bytes().replace(b"synthetic", "synth\xe9tic".encode("latin-1"), 1))
    with pytest.raises(ConfigError, match=r"params\.yaml: not UTF-8 text \(byte \d+"):
        load_params(path)


def run_check(tmp_path, raw, *extra):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return main(["check-params", "--params", str(path), *extra])


def test_check_params_prints_every_variant(tmp_path, capsys):
    assert run_check(tmp_path, RAW) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "4 levels, 19 events" in lines["full"] and "(base)" in lines["full"]
    assert "1 levels, 8 events" in lines["depth1"] and "model.pyramid=[0]" in lines["depth1"]
    assert "1 levels, 1 events" in lines["single_event"]
    assert "zero-shot" in lines["zs_maxframe"] and "model.kind=maxframe" in lines["zs_maxframe"]
    assert lines["ok:"].startswith(f"ok: {len(RAW['variants'])} of {len(RAW['variants'])} variants valid")


def test_a_variant_that_does_not_fit_the_dataset_fails_only_when_the_study_runs_it(tmp_path, capsys):
    """depth3 needs 8 frames: with 4, check-params (the pipeline's first stage) warns while no stage runs it,
    and fails, naming the key, once the study trains it."""
    raw = edited()
    raw["model"]["num_frames"] = 4
    raw["model"]["pyramid"] = [0, 1]
    raw["variants"] = {name: raw["variants"][name] for name in ("full", "depth3", "zs_maxframe")}
    raw["study"] = {"trained": ["full"], "seeds": [1], "zero_shot": ["zs_maxframe"], "ablations": {}}
    raw["claims"]["tests"] = {"vs_maxframe": raw["claims"]["tests"]["vs_maxframe"]}
    raw["report"]["headline"] = "full"
    assert run_check(tmp_path, raw) == 0
    captured = capsys.readouterr()
    assert "warning: " in captured.err and "variants.depth3: model.pyramid" in captured.err
    assert "not in the study" in captured.err and "ok: 2 of 3 variants valid" in captured.out
    raw["study"]["trained"] = ["full", "depth3"]
    assert run_check(tmp_path, raw) == 2
    assert "variants.depth3: model.pyramid" in capsys.readouterr().err


def test_check_params_resolves_one_variant_of_another_dataset(tmp_path, capsys):
    assert run_check(tmp_path, RAW, "--dataset", "charades", "--variant", "depth2") == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["pyramid"] == [0, 1]
    assert (resolved["model"]["num_frames"], resolved["model"]["adapter_kernel"]) == (32, 3)
    assert resolved["variant"] == "depth2"


def test_check_params_error_is_one_line_with_exit_2(tmp_path, capsys):
    assert run_check(tmp_path, edited(variants__ia_none={"model": {"interaction": "nothing"}})) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "variants.ia_none: model.interaction: 'nothing' is not one of" in err
    assert main(["check-params", "--params", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: no such parameters file" in capsys.readouterr().err


def _with_variant(name: str) -> dict:
    raw = edited()
    raw["variants"][name] = {}
    return raw


@pytest.mark.parametrize(
    "raw, message",
    [
        # issue 23 case 3: DVC ran one stage per distinct seed, pool counted seed 42 twice
        (edited(study__seeds=[42, 42, 43]), r"study\.seeds: 42 listed more than once; list each once"),
        (edited(study__trained=["full", "depth1", "full"]), r"study\.trained: full listed more than once"),
        # issue 23 case 7: pool failed with KeyError 'full' after writing the zero-shot metrics
        (
            edited(study__trained=[], study__ablations={}),
            r"report\.headline: 'full' is not in study\.trained \(empty\); `pool` compares every variant with it",
        ),
        # issue 23 case 8: DVC failed later on the stage name `train@a@b-42`
        (_with_variant("a@b"), r"variants: 'a@b' is not a usable variant name; expected letters, digits, '_' and '-'"),
        (_with_variant("x/y"), r"variants: 'x/y' is not a usable variant name"),
    ],
)
def test_check_params_refuses_what_a_stage_would_trip_on(tmp_path, capsys, raw, message):
    assert run_check(tmp_path, raw) == 2
    assert re.search(message, capsys.readouterr().err)


def test_sources_name_the_layer_of_each_value():
    tvr = resolve(edited(dataset="tvr"), "depth1")
    assert tvr.source("train.epochs") == "presets.paper"
    assert tvr.source("train.lr") == "datasets.tvr.overrides"
    assert tvr.source("model.pyramid") == "variants.depth1"
    assert tvr.source("train.warmup") == "base"
    where = tvr.where("train.batch_videos")
    assert "presets.paper" in where and "-S ++datasets.tvr.overrides.train.batch_videos=" in where
    assert load_params(REPO / "params.yaml").sources == {}  # synthetic: no preset, no overrides


def test_a_base_edit_that_a_layer_replaces_is_reported(tmp_path, capsys):
    """`dvc exp run -S train.epochs=5` edits the base block; on TVR the preset's 10 wins. check-params
    warns, naming the layer and the key that would take effect."""
    from propy.config import shadowed

    raw = edited(dataset="tvr", train__epochs=5)
    assert ("train.epochs", 5, 10, "presets.paper") in shadowed(raw, resolve(raw))
    assert ("train.warmup", 0.1, 0.1, "base") not in shadowed(raw, resolve(raw))
    assert run_check(tmp_path, raw) == 0
    out, err = capsys.readouterr()
    assert "train.epochs" in out and "from presets.paper" in out.split("train.epochs", 1)[1].splitlines()[0]
    warning = next(line for line in err.splitlines() if line.startswith("warning: train.epochs"))
    assert "base value 5 is not used; presets.paper sets 10" in warning
    assert "datasets.tvr.overrides.train.epochs" in warning
    assert not [line for line in err.splitlines() if "train.warmup" in line]  # untouched keys: no noise


def test_resolved_variant_yaml_names_each_layer(tmp_path, capsys):
    assert run_check(tmp_path, RAW, "--dataset", "tvr", "--variant", "depth2") == 0
    out = capsys.readouterr().out
    assert "  epochs: 10  # presets.paper" in out and "  lr: 0.0008  # datasets.tvr.overrides" in out
    assert "  pyramid:  # variants.depth2" in out
    assert yaml.safe_load(out)["train"]["epochs"] == 10  # still YAML


def test_an_error_in_a_preset_value_names_the_preset():
    raw = edited(dataset="tvr")
    raw["presets"]["paper"]["model"]["num_frames"] = 24
    with pytest.raises(
        ConfigError,
        match=r"model\.pyramid: .*set by presets\.paper.*"
        r"datasets\.tvr\.overrides\.model\.pyramid",
    ):
        resolve(raw)


def test_weights_outside_the_pipeline_deps_are_a_warning(tmp_path, capsys):
    raw = edited(dataset="tvr")
    raw["datasets"]["tvr"]["overrides"]["clip"] = {"pretrained": "/somewhere/ViT-B-32.pt"}
    assert run_check(tmp_path, raw) == 0
    err = capsys.readouterr().err
    assert "warning: clip.pretrained: /somewhere/ViT-B-32.pt is not under weights/ or models/tvr/clip/" in err
    assert "datasets.tvr.overrides" in err.split("clip.pretrained: /somewhere", 1)[1]
    assert run_check(tmp_path, edited(dataset="tvr")) == 0
    assert "clip.pretrained: weights" not in capsys.readouterr().err  # presets.paper's weights/ViT-B-32.pt


def test_clip_loading_stages_depend_on_the_weights_folder():
    """DVC sees params.yaml's raw values only, not the preset's clip.pretrained: the stages that load
    CLIP depend on the whole weights/ folder (it exists in a fresh clone: its README is tracked)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("train", "baselines"):
        body = stages[name].get("do", stages[name])
        assert {"weights", "models/${dataset}/clip"} <= set(body["deps"]), name
    assert RAW["presets"]["paper"]["clip"]["pretrained"].startswith("weights/")
    assert (REPO / "weights" / "README.md").is_file()
