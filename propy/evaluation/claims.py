"""The statistics of a pre-registered test: a paired bootstrap test, Holm's correction across the
claims' tests, the minimum detectable effect (MDE), and which moments a variant's proposals can reach.

A test compares per-query outcomes of two variants (``[runs, queries]``, the same queries in the
same order) through the paired bootstrap of ``propy.evaluation.metrics.bootstrap_replicates``: each replicate
draws one set of queries for both sides and each side's training runs apart, so its spread holds
both the paired per-query differences and the seed variance. From the B replicates Δ*:

- interval: the central percentile interval (``percentile_interval``);
- SE: the standard deviation of the Δ* (ddof 1);
- p-value (two-sided, H0: no change): p = min(1, 2 (min(#{Δ* <= 0}, #{Δ* >= 0}) + 1) / (B + 1)),
  the bootstrap's share of replicates on the far side of 0, doubled; the +1s keep p above 0 when
  every replicate falls on one side;
- MDE at level α and power 1 - β: MDE = (z_{1-α/2} + z_{1-β}) SE, the smallest true |Δ| that a
  two-sided test at level α finds with probability 1 - β when Δ's estimate is normal with that SE.

Holm's step-down procedure over m tests: sort the p-values p_(1) <= ... <= p_(m); test i is
compared with α / (m - i + 1) and rejected while every smaller one was rejected; equivalently its
adjusted p-value max_{j <= i} min(1, (m - j + 1) p_(j)) is at most α. A claim's MDE is computed at
the level Holm compared its test with.

Design projection: the same bootstrap drawing Q' queries and S' training runs per replicate (the
observed ones resampled) estimates the SE, and so the MDE, that a test set of Q' queries from the
same population and S' seeds would give: the trade-off between test-set size, seeds and power.
Pure numpy; ``propy pool`` feeds these.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from propy.evaluation.metrics import bootstrap_replicates, percentile_interval, temporal_iou


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no change" from the replicates of Δ (module docstring)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.size == 0:
        raise ValueError("no bootstrap replicates")
    below, above = int((replicates <= 0).sum()), int((replicates >= 0).sum())
    return min(1.0, 2.0 * (min(below, above) + 1) / (replicates.size + 1))


def minimum_detectable_effect(se: float, alpha: float, power: float) -> float:
    """(z_{1-alpha/2} + z_{power}) x se: the smallest true change a two-sided test at level ``alpha``
    detects with probability ``power``."""
    if not (0 < alpha < 1 and 0 < power < 1) or se < 0:
        raise ValueError(f"need 0 < alpha, power < 1 and se >= 0, got alpha={alpha}, power={power}, se={se}")
    z = NormalDist().inv_cdf
    return (z(1 - alpha / 2) + z(power)) * se


def paired_test(
    values: np.ndarray, reference: np.ndarray, *, alpha: float, power: float, samples: int, level: float, seed: int = 0
) -> dict:
    """Δ = mean(values) - mean(reference) with its percentile ``ci``, ``se``, two-sided ``p`` and ``mde``
    (at ``alpha`` and ``power``), all from one paired bootstrap (module docstring)."""
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    replicates = bootstrap_replicates(values, reference, samples, seed)
    se = float(np.std(replicates, ddof=1)) if replicates.size > 1 else 0.0
    return {
        "delta": float(values.mean() - reference.mean()),
        "ci": list(percentile_interval(replicates, level)),
        "se": se,
        "p": bootstrap_p_value(replicates),
        "mde": minimum_detectable_effect(se, alpha, power),
    }


def projected_mde(
    values: np.ndarray,
    reference: np.ndarray,
    *,
    queries: int,
    runs: int,
    alpha: float,
    power: float,
    samples: int,
    seed: int = 0,
) -> float:
    """The MDE of the paired test of ``values`` against ``reference`` (as ``paired_test``) had it ``queries``
    test queries and ``runs`` training runs per trained side (a one-run side, zero-shot, keeps one)."""
    replicates = bootstrap_replicates(values, reference, samples, seed, queries=queries, runs=runs)
    return minimum_detectable_effect(float(np.std(replicates, ddof=1)), alpha, power)


def holm(p_values: dict[str, float], alpha: float) -> dict[str, dict]:
    """Per test: ``alpha_holm`` (the level its p-value is compared with), ``p_holm`` (adjusted p-value)
    and ``rejected``. Tests with equal p-values keep their given order."""
    if not 0 < alpha < 1:
        raise ValueError(f"need 0 < alpha < 1, got {alpha}")
    order = sorted(p_values, key=lambda name: p_values[name])  # stable: ties keep the given order
    m, running, out = len(order), 0.0, {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        out[name] = {"alpha_holm": alpha / (m - i), "p_holm": running, "rejected": running <= alpha}
    return {name: out[name] for name in p_values}


def reachable(proposals: np.ndarray, durations: np.ndarray, spans: np.ndarray, iou: float) -> np.ndarray:
    """bool ``[Nq]``: some proposal (``[Ne, 2]`` fractions of the video, scaled by each query's video
    ``durations`` ``[Nq]``) has IoU >= ``iou`` with the query's moment (``spans`` ``[Nq, 2]``, seconds).
    A moment no proposal reaches cannot be localised by any scoring of the events."""
    seconds = np.asarray(proposals, dtype=np.float64)[None] * np.asarray(durations, dtype=np.float64)[:, None, None]
    overlap = temporal_iou(seconds, np.asarray(spans, dtype=np.float64)[:, None, :])  # [Nq, Ne]
    return overlap.max(axis=1) >= iou
