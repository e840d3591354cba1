"""``propy evaluate`` on the tiny synthetic benchmark with a random-init tiny CLIP: every output
file and key exists, and every number agrees with an independent recomputation from the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from propy import __version__
from propy.config import load_params
from propy.data.annotations import load_annotations
from propy.data.cache import FrameCache
from propy.data.datasets import VideoClips, query_tokens
from propy.evaluation.metrics import temporal_iou
from propy.model.backbone import create_clip, load_clip
from propy.model.checkpoint import save_trained
from propy.model.network import build_model
from propy.runtime.files import atomic_torch_save
from tests.conftest import REPO, layout_args, run_evaluate, tiny_layout, write_tiny_params

KS = [1, 2, 3, 4]
BENCH = {}  # params file -> the tiny bench it describes


@pytest.fixture(scope="module")
def study(tiny_bench, tmp_path_factory):
    """Params, plus evaluate outputs of the zero-shot maxframe baseline and an untrained ProPy."""
    root = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(0)  # a random CLIP saved to a file, so that every load gets the same weights
    clip = create_clip(str(REPO / "configs" / "propy-tiny.json"))
    atomic_torch_save(root / "clip.pt", clip.state_dict())
    overrides = {"clip": {"pretrained": str(root / "clip.pt")}, "eval": {"vcmr_top_events": 2}}
    params_path = write_tiny_params(root / "params.yaml", overrides)
    params = load_params(params_path, "tiny")  # an untrained ProPy, saved as `propy train` saves its best epoch
    model = build_model(params.model, load_clip(params.clip).model)
    save_trained(root / "models" / "tiny" / "best.pt", model.trainable_state_dict(), params, epoch=7, val_SumR=1.0)
    for variant in ("zs_maxframe", "tiny"):
        weights = ["--checkpoint", str(root / "models" / variant / "best.pt")] if variant == "tiny" else []
        metrics, results = root / "metrics" / f"{variant}.json", root / "results" / variant
        code = run_evaluate(params_path, layout_args(tiny_bench), variant, metrics, results, *weights)
        assert code == 0
    BENCH[params_path] = tiny_bench
    return params_path, root


def study_layout(params_path):
    """The tiny bench the module's params file was written for (its folder's sibling)."""
    return tiny_layout(BENCH[params_path])


def _recompute(params_path, root, variant):
    """Per-event cosines [Nt, Nv, Ne] and raw dot products of the test split, straight from the model."""
    params = load_params(params_path, variant)
    backbone = load_clip(params.clip)
    model = build_model(params.model, backbone.model).eval()
    if variant == "tiny":
        model.load_trainable_state_dict(torch.load(root / "models" / "tiny" / "best.pt")["trainable"])
    layout = study_layout(params_path)
    records = load_annotations(layout.annotations("test"))
    videos = list(dict.fromkeys(r.vid_name for r in records))
    clips = VideoClips(
        FrameCache(layout.cache, "test"),
        videos,
        params.model.num_frames,
        backbone.mean,
        backbone.std,
        train=False,
        seed=0,
    )
    with torch.no_grad():
        events = torch.cat([model.encode_video(clips[i][None]) for i in range(len(videos))])  # [Nv, Ne, D]
        text = F.normalize(model.encode_text(query_tokens(records, backbone.tokenizer, params.train.max_words)), dim=-1)
    cosine = torch.einsum("td,ved->tve", text, F.normalize(events, dim=-1)).double().numpy()
    raw = torch.einsum("td,ved->tve", text, events).double().numpy()
    positives = np.array([videos.index(r.vid_name) for r in records])
    return params, records, videos, positives, cosine, raw, model.proposals.numpy()


def cached_durations(params_path) -> dict[str, float]:
    """Each test video's length as the frame cache holds it: the span its sampled frames tile, which
    proposals scale by (not the annotations' duration)."""
    cache = FrameCache(study_layout(params_path).cache, "test")
    return {v: cache.duration(v) for v in cache.names}


TOL = 1e-6  # float32 rounding: batched and one-by-one encodes of a (base, twin) pair can tie or not


def _rank_bounds(scores, positives):
    """(best, worst) rank of each own video when scores within TOL of its own may fall either way."""
    own = scores[np.arange(len(positives)), positives][:, None]
    return 1 + (scores > own + TOL).sum(1), (scores > own - TOL).sum(1)


def _checked_ranks(rankings, scores, positives):
    """evaluate's ranks, once each is checked to lie within the recomputation's bounds."""
    ranks = np.array([r["rank"] for r in rankings])
    best, worst = _rank_bounds(scores, positives)
    assert np.all((best <= ranks) & (ranks <= worst)), (ranks, best, worst)
    return ranks


@pytest.mark.parametrize(
    "variant, kind, num_events, epoch", [("zs_maxframe", "maxframe", 4, None), ("tiny", "propy", 3, 7)]
)
def test_outputs_agree_with_an_independent_recomputation(study, variant, kind, num_events, epoch):
    params_path, root = study
    params, records, videos, positives, cosine, raw, proposals = _recompute(params_path, root, variant)
    nt = len(records)
    assert cosine.shape == (nt, len(videos), num_events)

    metrics = json.loads((root / "metrics" / f"{variant}.json").read_text())
    assert list(metrics) == [
        "variant",
        "kind",
        "dataset",
        "split",
        "epoch",
        "num_queries",
        "num_videos",
        "gallery",
        "R1",
        "R2",
        "R3",
        "R4",
        "SumR",
        "MedR",
        "MeanR",
        "unnormalized",
        "vcmr",
        "propy_version",
        "environment",
        "probes",
        "text_separability",
    ]
    assert (metrics["variant"], metrics["kind"], metrics["split"], metrics["epoch"]) == (variant, kind, "test", epoch)
    assert (metrics["dataset"], metrics["num_queries"], metrics["num_videos"]) == ("synthetic", nt, len(videos))
    assert metrics["gallery"]["present"] == metrics["gallery"]["annotated"] == {"videos": len(videos), "queries": nt}
    assert metrics["propy_version"] == __version__

    rankings = [json.loads(line) for line in (root / "results" / variant / "rankings.jsonl").read_text().splitlines()]
    assert [r["desc_id"] for r in rankings] == [r.desc_id for r in records]
    logits = cosine.max(-1)
    ranks = _checked_ranks(rankings, logits, positives)
    np.testing.assert_allclose([r["score"] for r in rankings], logits[np.arange(nt), positives], atol=1e-5)
    for row, r in zip(logits, rankings):
        assert [round(row[videos.index(v)], 5) for v in r["top10"]] == sorted(np.round(row, 5), reverse=True)[:10]

    for k in KS:
        assert metrics[f"R{k}"] == pytest.approx(100 * np.mean(ranks <= k))
    assert metrics["SumR"] == pytest.approx(sum(metrics[f"R{k}"] for k in KS))
    assert (metrics["MedR"], metrics["MeanR"]) == (pytest.approx(np.median(ranks)), pytest.approx(ranks.mean()))
    best, worst = _rank_bounds(raw.max(-1), positives)
    low, high = (sum(100 * np.mean(r <= k) for k in KS) for r in (worst, best))
    assert low - 1e-9 <= metrics["unnormalized"]["SumR"] <= high + 1e-9

    saved = np.load(root / "results" / variant / "events.npz")
    assert saved["desc_ids"].tolist() == [r.desc_id for r in records]
    np.testing.assert_allclose(saved["gt_event_scores"], cosine[np.arange(nt), positives], atol=1e-5)
    np.testing.assert_allclose(saved["proposals"], proposals)
    np.testing.assert_allclose(saved["ts"], [r.ts for r in records], rtol=1e-6)
    durations = cached_durations(params_path)
    np.testing.assert_allclose(saved["duration"], [durations[r.vid_name] for r in records], rtol=1e-6)
    expected = _brute_force_vcmr(cosine, positives, records, proposals, params, durations)
    assert metrics["vcmr"].keys() == expected.keys() == {"IoU0.1", "IoU0.3", "IoU0.5", "IoU0.7"}
    for iou, recalls in expected.items():
        assert metrics["vcmr"][iou] == pytest.approx(recalls), iou


@pytest.mark.parametrize("variant", ["zs_maxframe", "tiny"])
def test_rival_probes_agree_with_an_independent_recomputation(study, variant):
    params_path, root = study
    params, records, videos, positives, cosine, _, proposals = _recompute(params_path, root, variant)
    layout = study_layout(params_path)
    kinds = json.loads(layout.query_kinds.read_text())
    rivals = json.loads(layout.rivals.read_text())
    metrics = json.loads((root / "metrics" / f"{variant}.json").read_text())
    logits = cosine.max(-1)
    durations = cached_durations(params_path)
    for kind, entry in metrics["probes"].items():
        rows = [i for i, r in enumerate(records) if kinds[r.desc_id] == kind]
        wins = []
        for i in rows:
            own = logits[i, positives[i]]
            for v in rivals[records[i].desc_id]:
                other = logits[i, videos.index(v)]
                wins.append((1.0, 1.0) if own > other + TOL else (0.0, 0.0) if own < other - TOL else (0.0, 1.0))
        assert entry["n"] == len(rows) and entry["n_rival"] == len(rows)
        low, high = (100 * np.mean([w[j] for w in wins]) for j in (0, 1))
        assert low - 1e-9 <= entry["pairwise"] <= high + 1e-9
        assert entry["ci"][0] <= entry["pairwise"] <= entry["ci"][1]
        best, worst = (b[rows] for b in _rank_bounds(logits, positives))
        assert 100 * np.mean(worst <= 1) - 1e-9 <= entry["R1"] <= 100 * np.mean(best <= 1) + 1e-9
        hits = []
        for i in rows:
            best = np.flatnonzero(cosine[i, positives[i]] == cosine[i, positives[i]].max())
            spans = proposals[best] * durations[records[i].vid_name]
            hits.append(min(float(temporal_iou(s, np.array(records[i].ts))) for s in spans) >= 0.5)
        assert entry["loc_IoU0.5"] == pytest.approx(100 * np.mean(hits))
    assert set(metrics["probes"]) == {kinds[r.desc_id] for r in records}

    backbone = load_clip(params.clip)
    model = build_model(params.model, backbone.model).eval()
    if variant == "tiny":
        model.load_trainable_state_dict(torch.load(root / "models" / "tiny" / "best.pt")["trainable"])
    tokens = query_tokens(records, backbone.tokenizer, params.train.max_words)
    with torch.no_grad():
        trained = F.normalize(model.encode_text(tokens), dim=-1).double().numpy()
        frozen = F.normalize(backbone.model.encode_text(F.pad(tokens, (0, 32 - tokens.shape[1]))), dim=-1)
    frozen = frozen.double().numpy()
    for name, emb in (("trained", trained), ("frozen", frozen)):
        sep = metrics["text_separability"][name]
        for kind in ("appearance", "order"):
            pairs = [
                (i, j)
                for i, r in enumerate(records)
                if kinds[r.desc_id] == kind
                for j, q in enumerate(records)
                if q.vid_name in rivals[r.desc_id] and kinds[q.desc_id] == kind
            ]
            if pairs:
                assert sep[kind] == pytest.approx(np.mean([emb[i] @ emb[j] for i, j in pairs]), abs=1e-5)
    if variant == "zs_maxframe":  # no prompts: the trained text tower is the frozen one
        assert metrics["text_separability"]["trained"] == pytest.approx(metrics["text_separability"]["frozen"])


def _brute_force_vcmr(cosine, positives, records, proposals, params, duration):
    """VCMR recall by listing every (score, video, event) proposal per query and sorting them."""
    cfg = params.eval
    videos = list(dict.fromkeys(r.vid_name for r in records))
    hits = {t: {k: 0 for k in cfg.vcmr_ks} for t in cfg.iou_thresholds}
    for i, r in enumerate(records):
        candidates = []
        for v in range(cosine.shape[1]):
            best = np.argsort(-cosine[i, v], kind="stable")[: cfg.vcmr_top_events]
            for e in best:
                span = proposals[e] * duration[videos[v]]
                iou = float(temporal_iou(span, np.array(r.ts))) if v == positives[i] else 0.0
                candidates.append((-cosine[i, v, e], iou))  # ties: lower IoU first (pessimistic)
        ranked = [iou for _, iou in sorted(candidates)][: cfg.vcmr_max_proposals]
        for t in cfg.iou_thresholds:
            for k in cfg.vcmr_ks:
                hits[t][k] += any(iou >= t for iou in ranked[:k])
    return {f"IoU{t:g}": {f"R{k}": 100 * hits[t][k] / len(records) for k in cfg.vcmr_ks} for t in cfg.iou_thresholds}


def test_breakdown_bins_and_kinds_partition_the_queries(study):
    params_path, root = study
    layout = study_layout(params_path)
    records = load_annotations(layout.annotations("test"))
    kinds = json.loads(open(layout.query_kinds).read())
    ranks = {r["desc_id"]: r["rank"] for r in map(json.loads, (root / "results" / "tiny" / "rankings.jsonl").open())}
    breakdown = json.loads((root / "results" / "tiny" / "breakdown.json").read_text())

    labels = ["<0.1", "0.1-0.2", "0.2-0.4", ">=0.4"]
    assert [row["bin"] for row in breakdown["by_ratio"]] == [
        b for b in labels if any(b == _bin(r.ratio) for r in records)
    ]
    for row in breakdown["by_ratio"]:
        members = [ranks[r.desc_id] for r in records if _bin(r.ratio) == row["bin"]]
        assert row["n"] == len(members)
        assert row["R1"] == pytest.approx(100 * np.mean(np.array(members) <= 1))
    by_kind = {row["kind"]: row for row in breakdown["by_kind"]}
    assert {k: row["n"] for k, row in by_kind.items()} == {
        k: sum(kinds[r.desc_id] == k for r in records) for k in {kinds[r.desc_id] for r in records}
    }
    for kind, row in by_kind.items():
        members = np.array([ranks[r.desc_id] for r in records if kinds[r.desc_id] == kind])
        assert row["R2"] == pytest.approx(100 * np.mean(members <= 2))
        assert row["SumR"] == pytest.approx(sum(row[f"R{k}"] for k in KS))


def _bin(ratio):
    return "<0.1" if ratio < 0.1 else "0.1-0.2" if ratio < 0.2 else "0.2-0.4" if ratio < 0.4 else ">=0.4"


def test_a_trained_variant_without_weights_is_a_clear_error(study, tiny_bench, tmp_path, capsys):
    params_path, _ = study
    missing = ("--checkpoint", str(tmp_path / "missing.pt"))
    code = run_evaluate(params_path, layout_args(tiny_bench), "tiny", tmp_path / "m.json", tmp_path / "r", *missing)
    assert code == 2
    assert "missing.pt: no trained weights for variant 'tiny'" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_a_failed_write_leaves_the_previous_results_whole(study, tiny_bench, tmp_path, monkeypatch, capsys):
    """Issue 23 case 8: on a full disk evaluate left a new rankings.jsonl beside no events.npz."""
    import errno
    import os
    import shutil

    params_path, root = study
    results, metrics = tmp_path / "results", tmp_path / "m.json"
    shutil.copytree(root / "results" / "zs_maxframe", results)
    (results / "rankings.jsonl").write_text("the previous run's\n")
    before = {p.name: p.read_bytes() for p in results.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)  # events.npz, written after rankings.jsonl
    code = run_evaluate(params_path, layout_args(tiny_bench), "zs_maxframe", metrics, results)
    assert code == 2 and "events.npz: cannot write: no space left on the device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before and not metrics.exists()
    monkeypatch.undo()
    assert run_evaluate(params_path, layout_args(tiny_bench), "zs_maxframe", metrics, results) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "results"]  # no .partial or .old left
    assert (results / "rankings.jsonl").read_bytes() == (
        root / "results" / "zs_maxframe" / "rankings.jsonl"
    ).read_bytes()
