"""The authors' checkpoints in propy: parity with the reference code's outputs, and `import-reference`.

``data/reference/ref_propy_tiny.pt`` holds what the reference (BUAAPY/ProPy) computed for a tiny
CLIP with random trained tensors (see its README). The parity test writes those tensors in the
reference's checkpoint layout, imports them with the CLI, loads the result the way ``evaluate``
does and compares events, text, loss and every gradient; deliberately broken mappings must fail it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_params

from propy.cli import main
from propy.config import load_params
from propy.errors import ConfigError, DataError
from propy.model import reference
from propy.model.backbone import load_clip
from propy.model.checkpoint import file_digest, load_trained, read_checkpoint
from propy.model.network import build_model, scores
from propy.train.losses import symmetric_infonce

FIXTURE = Path(__file__).parent / "data" / "reference" / "ref_propy_tiny.pt"
TOLERANCE = 1e-4  # of the reference's scale (max |value|); float32 rounding gives about 1e-6


@pytest.fixture(scope="module")
def ref() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def reference_state(ref: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """The reference's ``model.state_dict()``: its CLIP under ``clip.``, the trained tensors by their names."""
    state = {f"{prefix}clip.{k}": v for k, v in ref["clip_state_dict"].items()}
    state.update({prefix + k: v for k, v in ref["reference_trainables"].items()})
    return state


def write_params(ref: dict, folder: Path, clip: dict | None = None, **model) -> Path:
    """params.yaml (variant ``tiny``) with the fixture's CLIP config and ProPy settings, plus overrides."""
    config = folder / "propy-parity-tiny.json"
    config.write_text(json.dumps(ref["clip_config"]), encoding="utf-8")
    s = ref["settings"]
    settings = {
        "num_frames": s["num_frames"],
        "pyramid": s["pyramid_overlaps"],
        "frame_prompts": s["frame_prompts"],
        "adapter_width": s["adapter_width"],
        "adapter_kernel": s["adapter_kernel"],
        "interaction": s["interaction"],
        "text_prompts": s["text_prompts"],
    }
    overrides = {"clip": {"model": str(config), "pretrained": "", **(clip or {})}, "model": {**settings, **model}}
    return write_tiny_params(folder / "params.yaml", overrides)


def import_cli(ckpt: Path, out: Path, params: Path) -> int:
    return main(["import-reference", str(ckpt), "--out", str(out), "--params", str(params), "--variant", "tiny"])


def bound_params(params_path: Path, out: Path):
    """The params the import prints: the variant's, with clip.pretrained at ``<out>/clip.pt``."""
    params = load_params(params_path, "tiny")
    return dataclasses.replace(params, clip=dataclasses.replace(params.clip, pretrained=str(out / "clip.pt")))


# --------------------------------------------------------------------------- parity


def _layer_major(ref_tensors, mapped):
    """Frame prompts [1, Nvp, L*W] read as if stored layer after layer."""
    mapped["frame_prompts.prompts"] = ref_tensors[reference.FRAME_PROMPTS][0].reshape(
        mapped["frame_prompts.prompts"].shape
    )


def _flipped_conv(ref_tensors, mapped):
    for name in [n for n in mapped if n.endswith("conv.weight")]:
        mapped[name] = mapped[name].flip(-1)


def _swapped_adapters(ref_tensors, mapped):
    for name in [n for n in mapped if n.startswith("adapters.0.")]:
        other = name.replace("adapters.0.", "adapters.1.", 1)
        mapped[name], mapped[other] = mapped[other], mapped[name]


BROKEN = {
    "frame prompts read layer-major": _layer_major,
    "time-flipped conv kernel": _flipped_conv,
    "adapters 0 and 1 swapped": _swapped_adapters,
}


def relative_diffs(ref: dict, model, mapping) -> dict[str, float]:
    """max |propy - reference| / max |reference| for events, text, loss and each gradient."""
    model.train()
    events = model.encode_video(ref["frames"])
    text = model.encode_text(ref["tokens"])
    logits, _ = scores(text, events)
    loss = symmetric_infonce(model.logit_scale * logits, ref["text_labels"])
    loss.backward()

    def rel(ours, theirs):
        return float((ours.detach() - theirs).abs().max() / theirs.abs().max())

    out = {
        "events": rel(events, ref["ref_events"]),
        "text": rel(text, ref["ref_text"]),
        "loss": rel(loss, ref["ref_loss"]),
    }
    ref_grads, dropped = mapping(ref["ref_grads"], model)  # gradients map like their tensors
    grads = dict(model.named_parameters())
    out.update({f"grad {name}": rel(grads[name].grad, g) for name, g in ref_grads.items()})
    for prefix, _ in dropped:  # what the import drops really has no effect in the reference
        assert all(g.abs().max() == 0 for n, g in ref["ref_grads"].items() if n.startswith(prefix)), prefix
    return out


@pytest.mark.parametrize("broken", [None, *BROKEN])
def test_imported_reference_tensors_reproduce_the_reference(ref, tmp_path, monkeypatch, capsys, broken):
    if broken:
        correct = reference.map_trainables

        def mapping(ref_tensors, model):
            mapped, dropped = correct(ref_tensors, model)
            BROKEN[broken](ref_tensors, mapped)
            return mapped, dropped

        monkeypatch.setattr(reference, "map_trainables", mapping)
    ckpt = tmp_path / "ckpt.pt"
    torch.save(reference_state(ref), ckpt)
    params_path = write_params(ref, tmp_path)
    assert import_cli(ckpt, tmp_path / "m", params_path) == 0
    params = bound_params(params_path, tmp_path / "m")
    model = build_model(params.model, load_clip(params.clip).model)  # as evaluate loads it
    model.load_trainable_state_dict(load_trained(tmp_path / "m" / "best.pt", params)["trainable"])

    diffs = relative_diffs(ref, model, reference.map_trainables)
    worst = max(diffs, key=diffs.get)
    with capsys.disabled():
        print(
            f"\n[{broken or 'correct mapping'}] worst: {worst} {diffs[worst]:.2e}; events {diffs['events']:.2e}, "
            f"text {diffs['text']:.2e}, loss {diffs['loss']:.2e}"
        )
    if broken:
        assert diffs[worst] > TOLERANCE, f"{broken} was not detected: {diffs}"
    else:
        assert diffs[worst] <= TOLERANCE, diffs


# --------------------------------------------------------------------------- import-reference


def test_resume_file_and_plain_state_dict_import_identically(ref, tmp_path, capsys):
    params_path = write_params(ref, tmp_path)
    plain, resume = tmp_path / "model.pt", tmp_path / "ckpt.best.pth.tar"
    torch.save(reference_state(ref), plain)
    torch.save(
        {
            "epoch": 7,
            "global_step": 700,
            "arch": "CLIp4Clip",
            "state_dict": reference_state(ref, "module."),
            "best_acc1": np.float64(150.5),
            "optimizer": {"state": {}, "param_groups": [{"lr": 8e-4}]},
        },
        resume,
    )
    assert import_cli(plain, tmp_path / "a", params_path) == 0
    assert import_cli(resume, tmp_path / "b", params_path) == 0
    said = capsys.readouterr().out
    assert "dropped clip.postfix_proj.*" in said
    assert "dropped clip.visual.transformer.resblocks.2.temp_adapter.*" in said
    assert f"pretrained: {tmp_path / 'b' / 'clip.pt'}" in said

    a, b = (read_checkpoint(tmp_path / d / "best.pt") for d in "ab")
    assert (tmp_path / "a" / "clip.pt").read_bytes() == (tmp_path / "b" / "clip.pt").read_bytes()
    assert a.keys() == b.keys() and a["trainable"].keys() == b["trainable"].keys()
    assert all(torch.equal(a["trainable"][k], b["trainable"][k]) for k in a["trainable"])
    assert {k: v for k, v in a.items() if k not in ("trainable", "reference", "epoch")} == {
        k: v for k, v in b.items() if k not in ("trainable", "reference", "epoch")
    }
    assert a["reference"]["sha256"] == file_digest(plain) and b["reference"]["sha256"] == file_digest(resume)
    assert (a["epoch"], b["epoch"]) == (None, 7)

    # evaluate and train --init-from accept it under the printed params, and only under them
    load_trained(tmp_path / "b" / "best.pt", bound_params(params_path, tmp_path / "b"))
    with pytest.raises(ConfigError, match="clip.weights"):
        load_trained(tmp_path / "b" / "best.pt", load_params(params_path, "tiny"))


REFUSED = [
    (
        {"adapter_width": 16},
        "clip.visual.transformer.resblocks.0.temp_adapter.fc1.weight: shape (32, 64) in the "
        "checkpoint, (16, 64) for this config",
        "model.adapter_width",
    ),
    (
        {"adapter_kernel": 3},
        "temp_adapter.conv.weight: shape (32, 1, 5, 1, 1) in the checkpoint, (32, 1, 3, 1, 1)",
        "model.adapter_kernel",
    ),
    (
        {"frame_prompts": 2},
        "clip.visual_prompt_embedding: shape (1, 4, 192) in the checkpoint, (1, 2, 192)",
        "model.frame_prompts",
    ),
    (
        {"prompt_layers": 2},
        "clip.visual_prompt_embedding: shape (1, 4, 192) in the checkpoint, (1, 4, 128)",
        "model.prompt_layers",
    ),
    (
        {"pyramid": [0, 0, 0, 0]},
        "clip.visual.global_prompts: shape (1, 19, 64) in the checkpoint, (1, 15, 64)",
        "model.num_frames and model.pyramid",
    ),
    ({"adapter_layers": 1}, "all 3 vision blocks", "model.adapter_layers"),
    ({"interaction": "none"}, "full ancestor-descendant interaction", "model.interaction"),
]


@pytest.mark.parametrize("model,message,key", REFUSED, ids=[key for _, _, key in REFUSED])
def test_a_config_that_does_not_fit_is_one_error_naming_tensor_and_key(ref, tmp_path, capsys, model, message, key):
    ckpt = tmp_path / "ckpt.pt"
    torch.save(reference_state(ref), ckpt)
    capsys.readouterr()
    assert import_cli(ckpt, tmp_path / "m", write_params(ref, tmp_path, **model)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and key in err, err
    assert not (tmp_path / "m").exists()


def test_a_gelu_clip_is_refused(ref, tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    torch.save(reference_state(ref), ckpt)
    params = write_params(ref, tmp_path)
    config = tmp_path / "propy-parity-tiny.json"
    config.write_text(json.dumps({k: v for k, v in ref["clip_config"].items() if k != "quick_gelu"}))
    assert import_cli(ckpt, tmp_path / "m", params) == 2
    err = capsys.readouterr().err
    assert "clip.model" in err and "QuickGELU" in err
    assert not (tmp_path / "m").exists()


def test_unknown_keys_are_one_error_listing_them(ref, tmp_path, capsys):
    state = reference_state(ref, "module.")
    state["module.clip.visual.extra_head.weight"] = torch.zeros(2)
    state["module.cross.embeddings.weight"] = torch.zeros(2)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"epoch": 1, "state_dict": state}, ckpt)
    capsys.readouterr()
    assert import_cli(ckpt, tmp_path / "m", write_params(ref, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "2 key(s)" in err
    assert "clip.visual.extra_head.weight" in err and "cross.embeddings.weight" in err
    assert not (tmp_path / "m").exists()


def test_a_checkpoint_without_clip_weights_is_bound_to_the_params_clip(ref, tmp_path):
    params = load_params(write_params(ref, tmp_path), "tiny")
    imported = reference.import_reference(dict(ref["reference_trainables"]), params)
    assert imported.clip_weights is None
    assert [prefix for prefix, _ in imported.dropped] == [
        "clip.postfix_proj.",
        "clip.visual.transformer.resblocks.2.temp_adapter.",
    ]


def test_postfix_prompts_are_kept_when_the_config_asks(ref, tmp_path):
    params = load_params(write_params(ref, tmp_path, postfix_prompts=True), "tiny")
    imported = reference.import_reference(reference_state(ref), params)
    assert torch.equal(
        imported.trainable["text_prompts.postfix.weight"], ref["reference_trainables"]["clip.postfix_proj.weight"]
    )
    assert [prefix for prefix, _ in imported.dropped] == ["clip.visual.transformer.resblocks.2.temp_adapter."]


def test_a_checkpoint_with_python_objects_is_not_unpickled(ref, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"state_dict": reference_state(ref), "args": argparse.Namespace(lr=1.0)}, ckpt)
    with pytest.raises(DataError, match="other than tensors and numbers"):
        reference.read_reference(ckpt)
