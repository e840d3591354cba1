"""PRVR and weakly-supervised VCMR metrics of one variant on one split.

Every gallery video is encoded once into its Ne event embeddings and every
query once (``propy.evaluation.encode``); scores are the max over events of the cosine,
computed in query chunks so only [chunk, Nv, Ne] per-event scores exist at a
time. The same chunks feed the VCMR recall (per video the top events' spans
are proposals, ranked over the corpus) and the per-query outputs the notebooks
read. Zero-shot baselines (``model.kind`` meanpool / maxframe) run the same
code without a checkpoint.

``eval.normalize_events`` picks the reported ranking (the other one is
reported under "unnormalized"); VCMR proposals and the saved event scores
always use the cosine, as the method ranks events by cosine.

Outputs (docs/architecture.md "Pipeline outputs"): ``metrics/<dataset>/runs/<variant>-s<seed>.json``,
``results/<dataset>/runs/<variant>-s<seed>/{breakdown.json, rankings.jsonl, events.npz}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from propy import __version__
from propy.config import (
    Layout,
    Params,
)
from propy.data.annotations import Record
from propy.data.gallery import split_gallery
from propy.evaluation.encode import Encoded, encode_split, load_split
from propy.evaluation.metrics import (
    VcmrRecall,
    bin_labels,
    bin_ratios,
    breakdown,
    positive_ranks,
    prvr_metrics,
)
from propy.evaluation.probes import (
    load_rivals,
    localisation_hits,
    pairwise_wins,
    probe_table,
    query_kinds,
    separability,
    text_pairs,
)
from propy.model.backbone import load_clip
from propy.model.loading import load_model
from propy.model.network import encode_clip_text
from propy.runtime.environment import environment
from propy.runtime.files import (
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    partial_folder,
    swap_in,
)

TOP = 10  # videos listed per query in rankings.jsonl


@dataclass
class Scored:
    """Per-query results of one split under both event normalisations."""

    ranks: dict[bool, np.ndarray]  # normalize_events -> [Nt] rank of the own video
    top: np.ndarray  # [Nt, min(TOP, Nv)] gallery indices, best first (reported setting)
    own_score: np.ndarray  # [Nt] score of the own video (reported setting)
    gt_event_scores: np.ndarray  # [Nt, Ne] cosine of each query with the events of its own video
    vcmr: dict
    rival_wins: np.ndarray  # [Nt] own-vs-rival pairwise accuracy of each query (reported setting; NaN: no rival)
    vcmr_by_kind: dict[str, dict]  # query kind -> VCMR recall of its queries (empty without kinds)


def score(
    encoded: Encoded,
    proposals: np.ndarray,
    params: Params,
    kinds: list[str] | None = None,
    rivals: list[list[int]] | None = None,
) -> Scored:
    """Ranks, top videos, own-video event cosines, VCMR recall (all queries and per kind) and
    own-vs-rival wins, chunk by chunk over the queries."""
    cfg, data = params.eval, encoded.data

    def new_vcmr() -> VcmrRecall:
        return VcmrRecall(
            proposals,
            data.durations,  # the cached video's: the span its sampled frames tile
            top_events=cfg.vcmr_top_events,
            max_proposals=cfg.vcmr_max_proposals,
            iou_thresholds=cfg.iou_thresholds,
            ks=cfg.vcmr_ks,
        )

    vcmr = new_vcmr()
    kind_arr = np.asarray(kinds) if kinds is not None else None
    by_kind = {k: new_vcmr() for k in sorted(set(kinds))} if kinds is not None else {}
    rivals = rivals if rivals is not None else [[] for _ in data.records]
    spans = np.array([r.ts for r in data.records], dtype=np.float64)
    ranks = {True: [], False: []}
    top, own, gt_events, wins = [], [], [], []
    chunks = zip(encoded.score_chunks(cfg.batch_queries, True), encoded.score_chunks(cfg.batch_queries, False))
    for (rows, max_cosine, per_event), (_, max_raw, _) in chunks:
        positives = data.positives[rows]
        index = np.arange(len(positives))
        per_event = per_event.double().cpu().numpy()
        vcmr.add(per_event, positives, spans[rows])  # proposals are ranked by cosine (docs/method.md)
        for kind, recall in by_kind.items():
            sel = kind_arr[rows] == kind
            if sel.any():
                recall.add(per_event[sel], positives[sel], spans[rows][sel])
        gt_events.append(per_event[index, positives])
        logits = {True: max_cosine.double().cpu().numpy(), False: max_raw.double().cpu().numpy()}
        for normalized, chunk in logits.items():
            ranks[normalized].append(positive_ranks(chunk, positives))
        reported = logits[cfg.normalize_events]
        top.append(np.argsort(-reported, axis=1, kind="stable")[:, :TOP])
        own.append(reported[index, positives])
        wins.append(pairwise_wins(reported, positives, rivals[rows]))
    return Scored(
        ranks={k: np.concatenate(v) for k, v in ranks.items()},
        top=np.concatenate(top),
        own_score=np.concatenate(own),
        gt_event_scores=np.concatenate(gt_events),
        vcmr=vcmr.result(),
        rival_wins=np.concatenate(wins),
        vcmr_by_kind={k: r.result() for k, r in by_kind.items()},
    )


def breakdowns(records: list[Record], ranks: np.ndarray, params: Params, kinds: list[str] | None) -> dict:
    """R@K by moment/video length ratio bin and, when the dataset has them, by query kind."""
    edges, ks = params.eval.ratio_bins, params.eval.ks
    ratios = np.array([r.ratio for r in records])
    return {
        "by_ratio": breakdown(ranks, bin_ratios(ratios, edges), ks, key="bin", order=bin_labels(edges)),
        "by_kind": breakdown(ranks, kinds, ks, key="kind") if kinds is not None else [],
    }


def frozen_text(model: nn.Module, tokens: torch.Tensor, batch: int, device: torch.device) -> np.ndarray:
    """[Nt, D] query embeddings of the frozen CLIP text tower (no prompts): the reference for separability."""
    with torch.no_grad():
        return torch.cat(
            [encode_clip_text(model.clip, t.to(device)).float().cpu() for t in tokens.split(batch)]
        ).numpy()


def rival_probes(
    params: Params,
    encoded: Encoded,
    scored: Scored,
    proposals: np.ndarray,
    kinds: list[str],
    rivals: list[list[int]],
    frozen: np.ndarray,
) -> dict:
    """``{"probes": {kind: ...}, "text_separability": {"frozen": ..., "trained": ...}}`` (propy.evaluation.probes)."""
    cfg, data = params.eval, encoded.data
    located = localisation_hits(
        scored.gt_event_scores,
        proposals,
        np.array([r.ts for r in data.records]),
        data.durations[data.positives],
        cfg.probe_iou,
    )
    table = probe_table(kinds, scored.ranks[cfg.normalize_events], scored.rival_wins, located, cfg.ks, cfg.probe_iou)
    for kind, entry in table.items():
        entry["vcmr"] = scored.vcmr_by_kind[kind]
    pairs = text_pairs(data.records, kinds, rivals, data.positives)
    return {
        "probes": table,
        "text_separability": {
            "frozen": separability(frozen, pairs),
            "trained": separability(encoded.queries.cpu().numpy(), pairs),
        },
    }


def write_outputs(
    params: Params,
    split: str,
    epoch: int | None,
    encoded: Encoded,
    scored: Scored,
    proposals: np.ndarray,
    metrics_path: Path,
    results: Path,
    kinds: list[str] | None = None,
    probes: dict | None = None,
    gallery: dict | None = None,
) -> dict:
    """Write the per-query results, then the metrics JSON (with ``probes`` merged in, and ``gallery``:
    the split's annotated, present and left-out counts); return the metrics.

    The results are written into ``<results>.partial`` and swapped in whole, so a failure on the way
    (a full disk) leaves the previous results as they were, not a mixture of old and new files."""
    cfg, data = params.eval, encoded.data
    final, results = results, partial_folder(results)
    reported, other = scored.ranks[cfg.normalize_events], scored.ranks[not cfg.normalize_events]
    other_metrics = prvr_metrics(other, cfg.ks)
    metrics = {
        "variant": params.variant,
        "kind": params.model.kind,
        "dataset": params.dataset,
        "split": split,
        "epoch": epoch,
        "num_queries": len(data.records),
        "num_videos": len(data.vid_names),
        **({"gallery": gallery} if gallery is not None else {}),
        **prvr_metrics(reported, cfg.ks),
        "unnormalized": {k: v for k, v in other_metrics.items() if k not in ("MedR", "MeanR")},
        "vcmr": scored.vcmr,
        "propy_version": __version__,
        "environment": environment(),
        **(probes or {}),
    }
    atomic_write_json(results / "breakdown.json", breakdowns(data.records, reported, params, kinds))
    lines = [
        json.dumps(
            {
                "desc_id": r.desc_id,
                "vid_name": r.vid_name,
                "rank": int(rank),
                "top10": [data.vid_names[v] for v in top],
                "score": float(s),
                **(
                    {
                        "kind": kinds[i],
                        "rival_win": None if np.isnan(scored.rival_wins[i]) else float(scored.rival_wins[i]),
                    }
                    if kinds is not None
                    else {}
                ),
            }
        )
        for i, (r, rank, top, s) in enumerate(zip(data.records, reported, scored.top, scored.own_score))
    ]
    atomic_write_text(results / "rankings.jsonl", "\n".join(lines) + "\n")
    arrays = {
        "desc_ids": np.array([r.desc_id for r in data.records]),
        "gt_event_scores": scored.gt_event_scores.astype(np.float32),
        "proposals": proposals.astype(np.float32),
        "ts": np.array([r.ts for r in data.records], dtype=np.float32),
        "duration": data.durations[data.positives].astype(np.float32),  # the own video's, as cached
    }

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, **arrays)

    atomic_write_with(results / "events.npz", save_npz)
    swap_in(results, final)
    atomic_write_json(metrics_path, metrics)  # last: its presence means the run finished
    return metrics


def evaluate(
    params: Params,
    layout: Layout,
    split: str,
    device: torch.device,
    checkpoint: Path | None,
    metrics_path: Path,
    results: Path,
) -> dict:
    """Encode, score and write every output of one variant on ``split``; return the metrics."""
    backbone = load_clip(params.clip)
    data = load_split(params, layout, split, backbone)
    model, epoch = load_model(params, backbone, checkpoint, device)
    encoded = encode_split(model, data, params.eval.batch_videos, params.eval.batch_queries, device)
    proposals = model.proposals.cpu().numpy()
    kinds = query_kinds(layout.query_kinds, data.records)
    rivals = load_rivals(layout.rivals, data.records, data.vid_names) if layout.rivals else None
    scored = score(encoded, proposals, params, kinds, rivals)
    probes = None
    if kinds is not None and rivals is not None:
        frozen = frozen_text(model, data.tokens, params.eval.batch_queries, device)
        probes = rival_probes(params, encoded, scored, proposals, kinds, rivals, frozen)
    gallery = split_gallery(layout, split)
    return write_outputs(
        params, split, epoch, encoded, scored, proposals, metrics_path, results, kinds, probes, gallery
    )


def summary_lines(params: Params, title: str, metrics: dict) -> list[str]:
    """What a run's metrics say, for the console: recalls, VCMR, and each probe kind."""
    recalls = ", ".join(f"R{k} {metrics[f'R{k}']:.1f}" for k in params.eval.ks)
    vcmr = ", ".join(f"{iou} " + " ".join(f"{k} {v:.1f}" for k, v in rs.items()) for iou, rs in metrics["vcmr"].items())
    lines = [
        f"{title}: {recalls}, SumR {metrics['SumR']:.1f}, MedR {metrics['MedR']:g} "
        f"(other event normalisation: SumR {metrics['unnormalized']['SumR']:.1f}); VCMR {vcmr}; "
    ]
    loc = f"loc_IoU{params.eval.probe_iou:g}"
    for kind, p in metrics.get("probes", {}).items():
        ci = [round(c, 1) for c in p.get("ci", [])]
        lines.append(
            f"  {kind}: n {p['n']}, rival pairwise {p.get('pairwise', float('nan')):.1f}% {ci}, "
            f"R1 {p['R1']:.1f}, loc {p[loc]:.1f}%"
        )
    if "text_separability" in metrics:
        lines.append(f"  text separability {metrics['text_separability']}")
    return lines
