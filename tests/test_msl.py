"""MS-SL (propy/model/msl.py): proposals as the paper defines them, the two scales' scores worked out by hand,
the hard-negative schedule, the frame embeddings (propy/data/features.py) and a tiny train + evaluate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, layout_args, tiny_layout, write_tiny_params

from propy.cli import main
from propy.config import MslConfig, build, load_params, resolve
from propy.data.cache import FrameCache
from propy.data.features import FrameFeatures, compute_split
from propy.data.video import normalize, sample_indices
from propy.errors import ConfigError, DataError
from propy.model.backbone import create_clip, load_clip
from propy.model.msl import MsSL, _negatives, window_slots

TINY_CLIP = str(REPO / "configs" / "propy-tiny.json")
MSL = {
    "frames": 8,
    "slots": 4,
    "hidden": 16,
    "heads": 2,
    "dropout": 0.1,
    "scale_weights": [0.7, 0.3],
    "margin": 0.2,
    "nce_weights": [0.02, 0.04],
    "hard_negative_start_epoch": 1,
    "hard_pool_size": 2,
}


def msl(**changes) -> MsSL:
    torch.manual_seed(0)
    return MsSL(build(MslConfig, {**MSL, **changes}, "model.msl"), create_clip(TINY_CLIP)).eval()


def test_32_slots_give_the_528_windows_of_the_paper_in_the_reference_order():
    spans = window_slots(32)
    assert len(spans) == 32 * 33 // 2 == 528
    assert spans[:3].tolist() == [[0, 1], [1, 2], [2, 3]] and spans[31].tolist() == [31, 32]  # width 1 first
    assert spans[32].tolist() == [0, 2] and spans[62].tolist() == [30, 32]  # then the 31 windows of width 2
    assert spans[63].tolist() == [0, 3] and spans[527].tolist() == [0, 32]  # ... up to the whole video
    assert len({tuple(s) for s in spans}) == 528 and all(0 <= a < b <= 32 for a, b in spans)
    model = msl(frames=32, slots=32)
    assert model.num_events == 528
    assert model.proposals[63].tolist() == [0.0, 3 / 32] and model.proposals[527].tolist() == [0.0, 1.0]


def test_a_proposal_is_the_mean_of_its_encoded_slots_and_slots_pool_the_frames():
    model = msl()
    frames = torch.randn(2, 8, 64)
    packed = model.encode_video(frames)
    assert packed.shape == (2, 10 + 8 + 8, 16)
    slots = frames.reshape(2, 4, 2, 64).mean(dim=2)  # 8 frames -> 4 slots of 2
    clips = model.clip_encoder(slots)
    spans = window_slots(4).tolist()
    for start, end in ([0, 1], [1, 3], [0, 4]):
        expected = clips[:, start:end].mean(dim=1)
        torch.testing.assert_close(packed[:, spans.index([start, end])], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \[B, 8, D\] frame embeddings \(model.msl.frames\)"):
        model.encode_video(torch.randn(2, 7, 64))


def test_the_score_is_the_weighted_best_clip_cosine_plus_the_key_clip_guided_frame_cosine():
    model = msl(frames=2, slots=2)  # 3 proposals, 2 frames; features built by hand
    proposals = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    keys, values = [[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]
    video = torch.tensor([proposals + keys + values])
    logits, per_event = model.score(torch.tensor([[2.0, 0.0]]), video)
    torch.testing.assert_close(per_event[0, 0], torch.tensor([1.0, 0.0, math.sqrt(0.5)]))
    # key clip = proposal 0 = [1, 0]: attention logits [1, 0] over the frames; the attended value is
    # [1, e] / (1 + e), whose cosine with the query [1, 0] is 1 / sqrt(1 + e^2)
    expected = 0.7 * 1.0 + 0.3 / math.sqrt(1 + math.e**2)
    assert logits.item() == pytest.approx(expected, rel=1e-6)


def test_negatives_are_random_then_drawn_from_the_hardest():
    scores = torch.tensor([[0.9, 0.5, 0.1, 0.3]]).repeat(400, 1)
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[:, 0] = True
    torch.manual_seed(0)

    def drawn(pool):
        return sorted({round(x, 4) for x in _negatives(scores, positive, pool).tolist()})

    assert drawn(None) == [0.1, 0.3, 0.5]  # any negative, never the positive
    assert drawn(2) == [0.3, 0.5]  # the two hardest
    assert drawn(1) == [0.5]


def test_the_loss_trains_every_msl_tensor_and_leaves_clip_frozen():
    model = msl().train()
    tokens = torch.randint(1, 1000, (5, 12))
    tokens[:, 8:] = 0
    labels = torch.tensor([0, 0, 1, 2, 2])
    for epoch in (0, 1):  # random negatives, then hard ones (hard_negative_start_epoch 1)
        model.zero_grad()
        loss = model.loss(model.encode_video(torch.randn(3, 8, 64)), model.encode_text(tokens), labels, epoch)
        assert torch.isfinite(loss) and loss > 0
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert not any(p.requires_grad for p in model.clip.parameters())


def test_config_checks_and_the_presets_own_setting_of_a_variant():
    with pytest.raises(ConfigError, match=r"model.msl.slots: 16 slots need at least as many frames \(frames is 8\)"):
        build(MslConfig, {**MSL, "slots": 16}, "model.msl")
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["dataset"] = "tvr"
    tvr_msl, tvr_full = resolve(raw, "msl"), resolve(raw, "full")
    assert (tvr_msl.train.lr, tvr_msl.train.batch_videos, tvr_msl.train.epochs, tvr_msl.train.patience) == (
        2.5e-4,
        128,
        100,
        10,
    )
    assert (tvr_msl.model.msl.frames, tvr_msl.model.msl.slots, tvr_msl.model.msl.hidden) == (128, 32, 384)
    assert tvr_msl.source("train.lr") == "presets.paper.variants.msl"
    assert tvr_full.train.lr == 8.0e-4  # the other variants keep TVR's own settings
    raw["dataset"] = "charades"
    assert resolve(raw, "msl").model.msl.scale_weights == [0.5, 0.5]
    raw["presets"]["paper"]["variants"]["nosuch"] = {}
    with pytest.raises(ConfigError, match=r"presets.paper.variants: 'nosuch' is not a variant"):
        resolve(raw, "msl")


def test_features_are_clips_frame_embeddings_and_a_stale_stamp_is_refused(tiny_bench, tmp_path):
    params = load_params(write_tiny_params(tmp_path / "params.yaml"))
    backbone = load_clip(params.clip)
    cache = FrameCache(tiny_bench / "cache", "val")
    out = tmp_path / "features" / "val"
    frames = compute_split(backbone, params.clip, cache, out, 16, torch.device("cpu"))
    assert frames == sum(cache.num_frames(v) for v in cache.names)
    assert compute_split(backbone, params.clip, cache, out, 16, torch.device("cpu")) == 0  # up to date
    vid = cache.names[1]
    data = FrameFeatures(out, params.clip, cache, [vid], 8, train=False, seed=0)
    index = sample_indices(cache.num_frames(vid), 8, train=False)
    with torch.no_grad():
        expected = backbone.model.encode_image(normalize(cache.frames_at(vid, index), backbone.mean, backbone.std))
    torch.testing.assert_close(data[0], expected, rtol=2e-3, atol=2e-3)  # stored as float16
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stamp"]["clip_model"] = "ViT-B-32"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"from another CLIP or frame cache.*re-run `python -m propy features`"):
        FrameFeatures(out, params.clip, cache, [vid], 8, train=False, seed=0)


def test_msl_trains_with_early_stopping_and_evaluates_with_its_proposals(tiny_bench, tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml", {"model": {"msl": MSL}})
    raw = yaml.safe_load(params.read_text())
    raw["variants"]["msl"] = {"model": {"kind": "msl"}, "train": {"epochs": 5, "lr": 1e-12, "patience": 1}}
    params.write_text(yaml.safe_dump(raw))
    features = ["--features", str(tmp_path / "features")]
    assert (
        main(
            [
                "features",
                "--params",
                str(params),
                *layout_args(tiny_bench),
                "--out",
                str(tmp_path / "features"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out, log = tmp_path / "models" / "msl", tmp_path / "log.json"
    common = ["--params", str(params), "--variant", "msl", *layout_args(tiny_bench)]
    assert main(["train", *common, "--seed", "3", "--out", str(out), "--log", str(log), "--device", "cpu"]) == 2
    assert "pass --features" in capsys.readouterr().err
    assert (
        main(["train", *common, *features, "--seed", "3", "--out", str(out), "--log", str(log), "--device", "cpu"]) == 0
    )
    # lr 1e-12 leaves validation SumR where epoch 1 put it: patience 1 stops after epoch 2
    assert [e["epoch"] for e in json.loads(log.read_text())] == [1, 2]
    assert "early stop after epoch 2: no better validation SumR since epoch 1" in capsys.readouterr().out
    metrics = tmp_path / "msl.json"
    assert (
        main(
            [
                "evaluate",
                *common,
                *features,
                "--checkpoint",
                str(out / "best.pt"),
                "--metrics",
                str(metrics),
                "--results",
                str(tmp_path / "results"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    result = json.loads(metrics.read_text())
    assert result["kind"] == "msl" and 0 <= result["SumR"] <= 400 and result["vcmr"]
    events = np.load(tmp_path / "results" / "events.npz")
    assert events["proposals"].shape == (10, 2) and events["gt_event_scores"].shape[1] == 10
    assert tiny_layout(tiny_bench).features is None  # the layout has no embeddings unless given


def test_search_refuses_msl_whose_score_needs_more_than_one_vector_per_event(tmp_path):
    from propy.search.engine import Encoder

    params = load_params(write_tiny_params(tmp_path / "params.yaml", {"model": {"kind": "msl", "msl": MSL}}))
    with pytest.raises(ConfigError, match="model.kind msl scores a query against a video's frames"):
        Encoder(params, tmp_path / "best.pt", device="cpu")
