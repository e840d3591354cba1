"""Retrieval metrics from score matrices: PRVR ranks and recalls, temporal IoU, bins, VCMR.

Pure numpy functions of arrays, so they are tested on hand-made matrices and
shared by evaluation and per-epoch model selection.

Ties are pessimistic everywhere: a positive that ties with other candidates
is ranked after all of them, so a constant scorer gets no credit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_finite(scores: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{what} contain NaN or infinite values")


def positive_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """1-based rank of each query's positive video among all videos.

    ``scores`` is [Nt, Nv], ``positives`` [Nt] video indices. Rank = 1 + #videos
    scoring strictly higher + #other videos scoring exactly the same.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.int64)
    if scores.ndim != 2 or positives.shape != (scores.shape[0],):
        raise ValueError(f"expected scores [Nt, Nv] and positives [Nt], got {scores.shape} and {positives.shape}")
    _check_finite(scores, "scores")
    positive = scores[np.arange(len(positives)), positives][:, None]
    return (scores >= positive).sum(axis=1)  # the positive itself is counted once: the "1 +"


def recall_at_k(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``{"R1": %, ...}``: percent of queries whose positive ranks within K."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks: recall is undefined")
    return {f"R{k}": float(100.0 * np.mean(ranks <= k)) for k in ks}


def prvr_metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """R@K for each K, SumR (their sum), MedR and MeanR."""
    recalls = recall_at_k(ranks, ks)
    return {
        **recalls,
        "SumR": float(sum(recalls.values())),
        "MedR": float(np.median(ranks)),
        "MeanR": float(np.mean(ranks)),
    }


def temporal_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of [start, end] spans, broadcast over leading dims.

    Disjoint spans give 0; so does an empty union (two zero-length spans), where
    the ratio is undefined.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the len(edges) + 1 bins: ``<e0``, ``e0-e1``, ..., ``>=eN``."""
    if len(edges) == 0 or any(lo >= hi for lo, hi in zip(edges, edges[1:])):
        raise ValueError(f"bin edges must be non-empty and strictly increasing, got {list(edges)}")
    inner = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:])]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def bin_ratios(ratios: np.ndarray, edges: Sequence[float]) -> list[str]:
    """Bin label of each ratio; bins are closed on the left, [lo, hi), so 0.1 is in ``0.1-0.2``."""
    labels = bin_labels(edges)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(ratios, dtype=np.float64), side="right")
    return [labels[i] for i in index]


def breakdown(
    ranks: np.ndarray,
    groups: Sequence[str],
    ks: Sequence[int],
    key: str = "group",
    order: Sequence[str] | None = None,
) -> list[dict]:
    """Recalls per group: ``[{key: group, "n", "R1", ..., "SumR"}, ...]``.

    Groups come in ``order`` (e.g. the bin labels) when given, else sorted;
    groups without queries are left out, as their recall is undefined.
    """
    ranks = np.asarray(ranks)
    groups_arr = np.asarray(groups, dtype=object)
    if groups_arr.shape != ranks.shape:
        raise ValueError(f"one group per rank expected, got {groups_arr.shape} groups for {ranks.shape} ranks")
    present = set(groups_arr.tolist())
    if order is not None and not present <= set(order):
        raise ValueError(f"groups {sorted(present - set(order))} are missing from the order {list(order)}")
    rows = []
    for group in order if order is not None else sorted(present):
        if group not in present:
            continue
        selected = ranks[groups_arr == group]
        recalls = recall_at_k(selected, ks)
        rows.append({key: group, "n": int(selected.size), **recalls, "SumR": float(sum(recalls.values()))})
    return rows


def _pessimistic_order(scores: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices sorting the last axis by descending score; ties put higher ``quality`` last."""
    return np.lexsort((quality, -scores), axis=-1)


class VcmrRecall:
    """Weakly-supervised video corpus moment retrieval recall (no NMS), fed query chunk by chunk.

    Chunks keep memory at n x Nv x Ne scores. Per query and video the
    ``top_events`` best events become proposals ``proposals[e] * durations[v]``
    (``proposals`` [Ne, 2] are event spans / Nf, ``durations`` [Nv] seconds);
    the ``max_proposals`` best of the corpus are ranked. R@K at IoU t is the
    percent of queries with a proposal on their own video whose IoU with the
    moment is >= t among the first K. Ties are pessimistic: tied proposals
    with lower IoU come first.
    """

    def __init__(
        self,
        proposals: np.ndarray,
        durations: np.ndarray,
        *,
        top_events: int,
        max_proposals: int,
        iou_thresholds: Sequence[float],
        ks: Sequence[int],
    ) -> None:
        proposals = np.asarray(proposals, dtype=np.float64)
        durations = np.asarray(durations, dtype=np.float64)
        self.spans = proposals[None, :, :] * durations[:, None, None]  # [Nv, Ne, 2] seconds
        if top_events < 1 or max_proposals < 1:
            raise ValueError(f"top_events and max_proposals must be at least 1, got {top_events}, {max_proposals}")
        self.top_events = top_events
        self.max_proposals = max_proposals
        self.thresholds = list(iou_thresholds)
        if not all(0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"IoU thresholds must lie in (0, 1], got {self.thresholds}")
        self.ks = list(ks)
        self.hits = np.zeros((len(self.thresholds), len(self.ks)), dtype=np.int64)
        self.queries = 0

    def add(self, scores: np.ndarray, positives: np.ndarray, gt_spans: np.ndarray) -> None:
        """Count one chunk: ``scores`` [n, Nv, Ne], own videos ``positives`` [n], moments ``gt_spans`` [n, 2]."""
        scores = np.asarray(scores, dtype=np.float64)
        positives = np.asarray(positives, dtype=np.int64)
        gt_spans = np.asarray(gt_spans, dtype=np.float64)
        n = scores.shape[0]
        if scores.shape[1:] != self.spans.shape[:2] or positives.shape != (n,) or gt_spans.shape != (n, 2):
            raise ValueError(
                f"expected scores [n, {self.spans.shape[0]}, {self.spans.shape[1]}], positives [n] and "
                f"gt_spans [n, 2], got {scores.shape}, {positives.shape} and {gt_spans.shape}"
            )
        _check_finite(scores, "event scores")
        # Only the own video's proposals have an IoU > 0, and every threshold is > 0: a proposal of another
        # video counts through its score alone, so each such video's top_events best scores are enough
        # (the values, ties included); the own video's proposals keep their pessimistic order.
        nv, ne = scores.shape[1:]
        k, rows = min(self.top_events, ne), np.arange(n)
        own, quality = scores[rows, positives], temporal_iou(self.spans[positives], gt_spans[:, None, :])
        order = _pessimistic_order(own, quality)[:, :k]  # [n, k]
        own_scores, own_quality = np.take_along_axis(own, order, -1), np.take_along_axis(quality, order, -1)
        others = np.partition(scores, ne - k, axis=-1)[..., ne - k :]  # [n, Nv, k]: each video's k best
        others[rows, positives] = -np.inf
        others = others.reshape(n, nv * k)
        # rank of own proposal j in the corpus list: the own proposals before it, and every other video's
        # proposal scored >= it (a tie puts the lower IoU, 0, first)
        rank = np.arange(k)[None, :] + np.stack([(others >= own_scores[:, [j]]).sum(-1) for j in range(k)], 1)
        for i, t in enumerate(self.thresholds):
            best = np.where(own_quality >= t, rank, np.iinfo(np.int64).max).min(axis=-1)  # [n]
            self.hits[i] += [int((best < min(kk, self.max_proposals)).sum()) for kk in self.ks]
        self.queries += n

    def result(self) -> dict[str, dict[str, float]]:
        """``{"IoU0.5": {"R1": %, ...}, ...}`` over all queries added."""
        if self.queries == 0:
            raise ValueError("no queries added: VCMR recall is undefined")
        return {
            f"IoU{t:g}": {f"R{k}": float(100.0 * self.hits[i, j] / self.queries) for j, k in enumerate(self.ks)}
            for i, t in enumerate(self.thresholds)
        }


def bootstrap_replicates(
    values: np.ndarray,
    reference: np.ndarray | None = None,
    samples: int = 1000,
    seed: int = 0,
    queries: int | None = None,
    runs: int | None = None,
) -> np.ndarray:
    """``[samples]`` bootstrap replicates of a per-query mean, resampling queries and training runs.

    ``values`` is ``[Nq]`` (one run) or ``[S, Nq]`` (one run per training seed, same queries in the
    same order); the statistic is the mean over runs of the mean over queries. With ``reference``
    (``[Nq]`` or ``[S', Nq]``, the same queries) it is the difference: each replicate draws one set
    of queries for both sides (paired) and the runs of each side independently, so the replicates
    spread by what both the finite test set and the choice of seeds can move.

    ``queries`` and ``runs`` (default: as many as given) set how many of each a replicate draws: the
    spread of a design with another number of test queries, or of training runs on a side that has
    more than one (``propy.evaluation.claims.projected_mde``).
    """
    values = _runs(values, "values")
    if reference is not None:
        reference = _runs(reference, "reference values")
        if reference.shape[1] != values.shape[1]:
            raise ValueError(f"reference {reference.shape} does not pair with values {values.shape}")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, values.shape[1], size=(samples, queries or values.shape[1]))
    counts = _draw_counts(drawn, values.shape[1])

    def replicate(v: np.ndarray) -> np.ndarray:
        count = runs if runs and v.shape[0] > 1 else v.shape[0]
        chosen = rng.integers(0, v.shape[0], size=(samples, count))
        if _sums_exactly(v, drawn.shape[1]):  # the same bits as the mean below, without [S, samples, Nq]
            per_run = (counts @ v.T).T / drawn.shape[1]
        else:
            per_run = v[:, drawn].mean(axis=2)  # [S, samples]
        return np.take_along_axis(per_run.T, chosen, axis=1).mean(axis=1)

    return replicate(values) - (replicate(reference) if reference is not None else 0.0)


def _draw_counts(drawn: np.ndarray, size: int) -> np.ndarray:
    """[samples, size] how often each replicate (a row of ``drawn``) draws each query, as float64 (the
    product's type: converted once, not in every product)."""
    rows = np.arange(drawn.shape[0])[:, None] * size
    counts = np.bincount((drawn + rows).ravel(), minlength=drawn.shape[0] * size)
    return counts.reshape(drawn.shape[0], size).astype(np.float64)


def _sums_exactly(v: np.ndarray, terms: int) -> bool:
    """Whether any sum of ``terms`` values of ``v`` is exact in float64, whatever the order of the terms:
    true of multiples of 1/1024 (recalls and rival scores in percent, halves) while the sums stay below
    2**53 units. Then a count matrix product gives the same bits as numpy's mean of the drawn copies."""
    units = v * 1024.0
    return bool(np.array_equal(units, np.rint(units)) and np.abs(units).max(initial=0.0) * terms < 2.0**53)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates."""
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_mean(
    values: np.ndarray,
    reference: np.ndarray | None = None,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of a per-query mean (or of its change from ``reference``) over queries and
    training runs: :func:`bootstrap_replicates` summarised by :func:`percentile_interval`."""
    return percentile_interval(bootstrap_replicates(values, reference, samples, seed), level)


def sumr_per_query(ranks: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Each query's share of SumR: 100 x the number of K with rank <= K (its mean over queries is SumR)."""
    ranks = np.asarray(ranks)
    return 100.0 * sum((ranks <= k).astype(np.float64) for k in ks)


def bootstrap_sumr(
    ranks: np.ndarray,
    ks: Sequence[int],
    reference: np.ndarray | None = None,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """:func:`bootstrap_mean` of SumR: ``ranks`` ``[Nq]`` or ``[S, Nq]``, optionally against ``reference``."""
    return bootstrap_mean(
        sumr_per_query(ranks, ks), None if reference is None else sumr_per_query(reference, ks), samples, level, seed
    )


def _runs(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected non-empty {what} of shape [Nq] or [runs, Nq], got shape {values.shape}")
    return values
