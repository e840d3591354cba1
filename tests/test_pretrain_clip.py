"""Small-CLIP pre-training on the tiny synthetic benchmark: loss goes down, the checkpoint loads
through open_clip by path, metrics are counted right, and an interrupted run resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch

from propy import __version__
from propy.cli import main
from propy.config import load_params
from propy.data.annotations import load_annotations
from propy.data.cache import FrameCache
from propy.data.video import normalize
from propy.errors import DataError
from propy.model.backbone import create_clip, load_clip, tokenize
from propy.train import pretrain_clip as pc
from tests.conftest import layout_args, tiny_layout, write_tiny_params

PRETRAIN = {"enabled": True, "epochs": 3, "batch_size": 16, "lr": 2.0e-3, "frames_per_event": 2, "seed": 0}


def _params(tiny_bench, tmp_path, **changes):
    path = write_tiny_params(tmp_path / "params.yaml", {"pretrain_clip": {**PRETRAIN, **changes}})
    return load_params(path), tiny_layout(tiny_bench)


def _train_loss(params, layout, model) -> float:
    """Loss of ``model`` on every training frame (event centres) as one batch."""
    captions = pc.load_captions(layout.captions)
    cache = FrameCache(layout.cache, "train")
    events = pc.split_events(captions, cache, "train")
    frames, labels = pc.event_frames(events, cache, 2, train=False, seed=0, epoch=0)
    backbone = load_clip(dataclasses.replace(params.clip, pretrained=""))
    tokens = tokenize(backbone.tokenizer, events.classes, model.context_length)
    model.eval()
    with torch.no_grad():
        images = normalize(frames, backbone.mean, backbone.std)
        return pc.batch_loss(model, images, torch.from_numpy(labels), tokens).item()


def test_pretraining_lowers_the_loss_and_saves_a_checkpoint_open_clip_loads(tiny_bench, tmp_path):
    params, layout = _params(tiny_bench, tmp_path)
    out, metrics_path = tmp_path / "clip" / "clip.pt", tmp_path / "metrics.json"
    torch.manual_seed(PRETRAIN["seed"])
    before = _train_loss(params, layout, create_clip(params.clip.model))  # the same init as the run's

    metrics = pc.pretrain(params, layout, out, metrics_path, torch.device("cpu"))

    trained = create_clip(params.clip.model, pretrained=str(out))
    assert _train_loss(params, layout, trained) < before - 0.1
    saved = torch.load(out)
    by_name = open_clip.create_model("propy-tiny", pretrained=str(out))  # registered by create_clip
    assert by_name.state_dict().keys() == saved.keys()
    assert all(torch.equal(by_name.state_dict()[k], saved[k]) for k in saved)
    assert trained.logit_scale.item() <= math.log(100.0) + 1e-6

    assert json.loads(metrics_path.read_text()) == metrics
    assert set(metrics) == {
        "zero_shot_accuracy",
        "text_separability",
        "num_classes",
        "num_frames",
        "epochs",
        "final_loss",
        "seconds",
        "propy_version",
    }
    assert metrics["propy_version"] == __version__
    # the separability of the val queries under the saved text tower, recomputed pair by pair
    records = load_annotations(layout.annotations("val"))
    kinds, rivals = (json.loads(p.read_text()) for p in (layout.query_kinds, layout.rivals))
    tokens = tokenize(load_clip(params.clip).tokenizer, [r.desc for r in records], trained.context_length)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(trained.eval().encode_text(tokens), dim=-1)
    for kind in ("appearance", "order"):
        pairs = [
            (i, j)
            for i, r in enumerate(records)
            for j, q in enumerate(records)
            if kinds[r.desc_id] == kinds[q.desc_id] == kind and q.vid_name in rivals[r.desc_id]
        ]
        if pairs:
            expected = np.mean([float(emb[i] @ emb[j]) for i, j in pairs])
            assert metrics["text_separability"][kind] == pytest.approx(expected, abs=1e-5)
    n = len(records)
    assert metrics["text_separability"]["all_queries"] == pytest.approx(
        float(((emb @ emb.T).sum() - n) / (n * (n - 1))), abs=1e-5
    )
    val_cache = FrameCache(layout.cache, "val")
    val = [c for c in pc.load_captions(layout.captions) if c["vid_name"] in val_cache]
    assert metrics["num_classes"] == len({c["caption"] for c in val})
    assert metrics["num_frames"] == 2 * len(val)
    assert metrics["epochs"] == 3 and metrics["seconds"] > 0 and math.isfinite(metrics["final_loss"])
    assert 0.0 <= metrics["zero_shot_accuracy"] <= 100.0
    assert not (tmp_path / "clip" / "clip.resume.pt").exists()  # removed once the run is complete


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_bench, tmp_path, monkeypatch, capsys):
    params, layout = _params(tiny_bench, tmp_path, epochs=2)
    cpu = torch.device("cpu")
    pc.pretrain(params, layout, tmp_path / "a" / "clip.pt", tmp_path / "a.json", cpu)
    reference = torch.load(tmp_path / "a" / "clip.pt")

    save = pc.save_resume

    def save_then_stop(path, config_hash, state):  # the process dies right after epoch 1's resume state is written
        save(path, config_hash, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(pc, "save_resume", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pc.pretrain(params, layout, tmp_path / "b" / "clip.pt", tmp_path / "b.json", cpu)
    monkeypatch.setattr(pc, "save_resume", save)
    assert not (tmp_path / "b" / "clip.pt").exists()

    pc.pretrain(params, layout, tmp_path / "b" / "clip.pt", tmp_path / "b.json", cpu)
    assert "after epoch 1" in capsys.readouterr().out
    resumed = torch.load(tmp_path / "b" / "clip.pt")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_resume_state_from_other_settings_is_ignored(tiny_bench, tmp_path, capsys):
    cpu = torch.device("cpu")
    out = tmp_path / "clip.pt"
    state = {"config_hash": "other settings", "epoch": 1}
    torch.save(state, tmp_path / "clip.resume.pt")
    pc.pretrain(*_params(tiny_bench, tmp_path, epochs=1), out, tmp_path / "m.json", cpu)
    assert "written for other params or input files; starting fresh" in capsys.readouterr().out


def test_disabled_pretraining_still_writes_the_stage_outputs(tiny_bench, tmp_path):
    """In a fresh interpreter, as DVC runs it: the skipped stage (real data) neither loads torch nor
    open_clip (seconds of start-up for a stage with nothing to do)."""
    params = write_tiny_params(tmp_path / "params.yaml")  # pretrain_clip.enabled: false
    out, metrics = tmp_path / "clip", tmp_path / "metrics.json"
    argv = ["pretrain-clip", "--params", str(params), *layout_args(tiny_bench), "--out", str(out), "--metrics"]
    code = (
        "import sys; from propy.cli import main; "
        f"code = main({[*argv, str(metrics)]!r}); "
        "print(code, sorted({'torch', 'open_clip', 'torchvision'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr[-3000:]
    assert json.loads(metrics.read_text()) == {"skipped": True, "propy_version": __version__}
    # a note, not an empty folder (DVC warns about an empty output on every run) and no weights
    assert [f.name for f in out.iterdir()] == ["SKIPPED.txt"]


def test_enabled_pretraining_must_write_the_file_clip_pretrained_names(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml", {"pretrain_clip": PRETRAIN})  # pretrained ""
    assert (
        main(
            [
                "pretrain-clip",
                "--params",
                str(params),
                *layout_args(tiny_bench),
                "--out",
                str(tmp_path / "clip"),
                "--metrics",
                str(tmp_path / "m.json"),
            ]
        )
        == 2
    )
    assert "clip.pretrained is ''" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"vid_name": "v", "start": 0, "end": 1}', r"captions.jsonl:2: expected an object with vid_name"),
        ('{"vid_name": "v", "start": 2, "end": 1, "caption": "a"}', r"captions.jsonl:2: expected 0 <= start"),
        ("not json", r"captions.jsonl:2: not valid JSON"),
    ],
)
def test_bad_caption_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "captions.jsonl"
    path.write_text('{"vid_name": "v", "start": 0, "end": 1, "caption": "a red circle"}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        pc.load_captions(path)
