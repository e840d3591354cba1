"""Rival probes: does a model prefer a query's own video to the designed rival that differs in one thing?

R@K over a whole gallery mixes many easy negatives with a few hard ones, so a
model that matches appearance only can look good. The synthetic benchmark gives
each query its rivals (``rivals.json``: videos that match everything but what
the query's kind tests), and these functions measure, per query kind:

- ``pairwise``: the share of (query, rival) pairs where the own video scores
  higher than the rival (ties count half; chance is 50%), with a bootstrap
  interval over queries;
- ``localisation``: the share of queries whose best event on their own video
  overlaps the moment with IoU >= a threshold (context queries need this);
- text separability: the mean cosine between a query and its rival's matching
  query, for kinds whose rival query differs only in the tested words (a text
  tower that maps both to one point cannot be helped by any video side).

Pure numpy; ``propy.evaluation.evaluate`` feeds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from propy.data.annotations import Record
from propy.errors import DataError
from propy.evaluation.metrics import bootstrap_mean, recall_at_k, temporal_iou
from propy.runtime.files import read_json

# kinds whose rival video carries a query that differs only in the tested words (colour; end state)
TEXT_PAIRED_KINDS = ("appearance", "order")


def read_query_kinds(path: str | Path | None) -> dict[str, str] | None:
    """desc_id -> query kind from the dataset's ``query_kinds.json``; None when the dataset has none."""
    if path is None:
        return None
    path = Path(path)
    kinds = read_json(path, "no such query kinds file (dataset entry query_kinds)")
    if not isinstance(kinds, dict):
        raise DataError(f"{path}: expected an object {{desc_id: kind}}")
    return kinds


def query_kinds(path: str | Path | None, records: list[Record]) -> list[str] | None:
    """Kind of each query from the dataset's ``query_kinds`` json, or None when it has none."""
    kinds = read_query_kinds(path)
    if kinds is None:
        return None
    missing = [r.desc_id for r in records if r.desc_id not in kinds]
    if missing:
        raise DataError(f"{path}: no kind for desc_id {missing[0]!r} ({len(missing)} queries in all)")
    return [kinds[r.desc_id] for r in records]


def load_rivals(path: str | Path, records: Sequence[Record], vid_names: Sequence[str]) -> list[list[int]]:
    """Gallery indices of each query's rivals (``[]`` for a query the file does not list)."""
    path = Path(path)
    rivals = read_json(path, "no such rivals file (dataset entry rivals; written by `python -m propy synth`)")
    if not isinstance(rivals, dict):
        raise DataError(f"{path}: expected an object {{desc_id: [rival vid_name, ...]}}")
    index = {v: i for i, v in enumerate(vid_names)}
    out = []
    for r in records:
        names = rivals.get(r.desc_id, [])
        missing = [v for v in names if v not in index]
        if missing:
            raise DataError(f"{path}: rival {missing[0]!r} of {r.desc_id!r} is not in the gallery of its split")
        out.append([index[v] for v in names])
    return out


def pairwise_wins(scores: np.ndarray, positives: np.ndarray, rivals: Sequence[Sequence[int]]) -> np.ndarray:
    """[Nt] mean over each query's rivals of 1 (own video higher), 0.5 (tie), 0; NaN without rivals."""
    scores = np.asarray(scores, dtype=np.float64)
    own = scores[np.arange(len(positives)), positives]
    out = np.full(len(positives), np.nan)
    for i, rows in enumerate(rivals):
        if len(rows):
            theirs = scores[i, list(rows)]
            out[i] = float(np.mean((own[i] > theirs) + 0.5 * (own[i] == theirs)))
    return out


def localisation_hits(
    event_scores: np.ndarray, proposals: np.ndarray, spans: np.ndarray, durations: np.ndarray, iou: float
) -> np.ndarray:
    """[Nt] bool: the best-scoring event of the own video (``event_scores`` [Nt, Ne]) has IoU >= ``iou``
    with the moment ``spans`` [Nt, 2] (seconds); ``proposals`` [Ne, 2] are spans / Nf. Ties: the worse IoU."""
    event_scores = np.asarray(event_scores, dtype=np.float64)
    seconds = np.asarray(proposals, dtype=np.float64)[None] * np.asarray(durations, dtype=np.float64)[:, None, None]
    overlap = temporal_iou(seconds, np.asarray(spans, dtype=np.float64)[:, None, :])  # [Nt, Ne]
    best = event_scores == event_scores.max(axis=1, keepdims=True)
    return np.where(best, overlap, np.inf).min(axis=1) >= iou


def text_pairs(
    records: Sequence[Record], kinds: Sequence[str], rivals: Sequence[Sequence[int]], positives: np.ndarray
) -> dict[str, list[tuple[int, int]]]:
    """Per kind of ``TEXT_PAIRED_KINDS``: (query, query of a rival video of the same kind) index pairs."""
    by_video: dict[int, list[int]] = {}
    for i, v in enumerate(positives):
        by_video.setdefault(int(v), []).append(i)
    pairs: dict[str, list[tuple[int, int]]] = {}
    for i, kind in enumerate(kinds):
        if kind not in TEXT_PAIRED_KINDS:
            continue
        for v in rivals[i]:
            matched = [(i, j) for j in by_video.get(v, []) if kinds[j] == kind]
            if matched:
                pairs.setdefault(kind, []).extend(matched)
    return pairs


def mean_pair_cosine(embeddings: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    """Mean cosine of the embedding rows of each (i, j) pair."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.asarray(pairs, dtype=np.int64).T
    return float(np.mean(np.sum(emb[i] * emb[j], axis=1)))


def separability(embeddings: np.ndarray, pairs: dict[str, list[tuple[int, int]]]) -> dict[str, float]:
    """Mean rival-pair cosine per kind, and over all distinct query pairs (``all_queries``) for scale."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    gram = emb @ emb.T
    n = len(emb)
    out = {kind: mean_pair_cosine(emb, p) for kind, p in sorted(pairs.items())}
    out["all_queries"] = float((gram.sum() - np.trace(gram)) / (n * (n - 1))) if n > 1 else float("nan")
    return out


def probe_table(
    kinds: Sequence[str],
    ranks: np.ndarray,
    wins: np.ndarray,
    located: np.ndarray,
    ks: Sequence[int],
    iou: float,
    seed: int = 0,
) -> dict[str, dict]:
    """Per kind: ``n``, ``pairwise`` (percent) with its 95% ``ci``, R@K, SumR and ``loc_IoU<iou>`` (percent)."""
    kinds_arr = np.asarray(kinds)
    out = {}
    for kind in sorted(set(kinds)):
        rows = kinds_arr == kind
        kind_wins = wins[rows]
        kind_wins = kind_wins[~np.isnan(kind_wins)]
        recalls = recall_at_k(ranks[rows], ks)
        entry = {"n": int(rows.sum()), "n_rival": int(kind_wins.size)}
        if kind_wins.size:
            low, high = bootstrap_mean(kind_wins, seed=seed)
            entry.update(pairwise=100.0 * float(kind_wins.mean()), ci=[100.0 * low, 100.0 * high])
        entry.update(recalls)
        entry["SumR"] = float(sum(recalls.values()))
        entry[f"loc_IoU{iou:g}"] = 100.0 * float(np.mean(located[rows]))
        out[kind] = entry
    return out
