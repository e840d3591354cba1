"""Metrics on hand-made score matrices, spans and ratios whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from propy.evaluation.metrics import (
    VcmrRecall,
    _sums_exactly,
    bin_labels,
    bin_ratios,
    bootstrap_replicates,
    bootstrap_sumr,
    breakdown,
    positive_ranks,
    prvr_metrics,
    recall_at_k,
    temporal_iou,
)

SCORES = np.array(
    [
        [0.9, 0.5, 0.1],  # positive 1: one video higher -> rank 2
        [0.2, 0.2, 0.2],  # positive 0: constant scorer, two ties -> rank 3
        [0.1, 0.8, 0.8],  # positive 2: tied with video 1 -> rank 2
        [0.3, 0.1, 0.2],  # positive 0: best -> rank 1
    ]
)
POSITIVES = np.array([1, 0, 2, 0])


def test_positive_ranks_count_ties_against_the_positive():
    assert positive_ranks(SCORES, POSITIVES).tolist() == [2, 3, 2, 1]


def test_constant_scorer_gets_no_credit():
    ranks = positive_ranks(np.zeros((5, 4)), np.array([0, 1, 2, 3, 0]))
    assert ranks.tolist() == [4] * 5
    assert recall_at_k(ranks, [1, 3])["R3"] == 0.0


def test_positive_ranks_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        positive_ranks(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="positives"):
        positive_ranks(SCORES, np.array([0, 1]))


def test_prvr_metrics_recalls_sumr_medr_meanr():
    metrics = prvr_metrics(positive_ranks(SCORES, POSITIVES), [1, 2, 100])
    assert metrics == {"R1": 25.0, "R2": 75.0, "R100": 100.0, "SumR": 200.0, "MedR": 2.0, "MeanR": 2.0}


def test_medr_of_odd_count_and_meanr():
    metrics = prvr_metrics(np.array([1, 7, 4]), [1])
    assert metrics["MedR"] == 4.0
    assert metrics["MeanR"] == 4.0
    assert metrics["R1"] == pytest.approx(100 / 3)


def test_temporal_iou_worked_examples():
    a = np.array([[0, 10], [0, 1], [0, 1], [2, 2], [2, 2], [1, 3], [0, 4]])
    b = np.array([[5, 15], [2, 3], [1, 2], [0, 4], [2, 2], [1, 3], [1, 2]])
    expected = [5 / 15, 0.0, 0.0, 0.0, 0.0, 1.0, 1 / 4]  # overlap, disjoint, touching, point, two points, same, inside
    np.testing.assert_allclose(temporal_iou(a, b), expected)


def test_temporal_iou_broadcasts():
    preds = np.array([[0.0, 2.0], [1.0, 3.0]])[:, None, :]  # [2, 1, 2]
    gts = np.array([[0.0, 2.0], [2.0, 4.0], [0.0, 4.0]])  # [3, 2]
    np.testing.assert_allclose(temporal_iou(preds, gts), [[1.0, 0.0, 0.5], [1 / 3, 1 / 3, 0.5]])


def test_bins_are_closed_on_the_left():
    edges = [0.1, 0.2, 0.4]
    assert bin_labels(edges) == ["<0.1", "0.1-0.2", "0.2-0.4", ">=0.4"]
    ratios = [0.0, 0.0999, 0.1, 0.15, 0.2, 0.39, 0.4, 1.0]
    assert bin_ratios(ratios, edges) == ["<0.1", "<0.1", "0.1-0.2", "0.1-0.2", "0.2-0.4", "0.2-0.4", ">=0.4", ">=0.4"]


@pytest.mark.parametrize("edges", [[], [0.2, 0.1], [0.1, 0.1]])
def test_bad_bin_edges(edges):
    with pytest.raises(ValueError, match="strictly increasing"):
        bin_ratios([0.5], edges)


def test_breakdown_counts_and_recalls_in_the_given_order():
    ranks = np.array([1, 5, 20, 2, 1])
    groups = ["a", "b", "a", "c", "b"]
    rows = breakdown(ranks, groups, [1, 10], key="bin", order=["c", "a", "z", "b"])
    assert rows == [
        {"bin": "c", "n": 1, "R1": 0.0, "R10": 100.0, "SumR": 100.0},
        {"bin": "a", "n": 2, "R1": 50.0, "R10": 50.0, "SumR": 100.0},  # "z" has no queries: left out
        {"bin": "b", "n": 2, "R1": 50.0, "R10": 100.0, "SumR": 150.0},
    ]
    assert [row["group"] for row in breakdown(ranks, groups, [1])] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="missing from the order"):
        breakdown(ranks, groups, [1], order=["a", "b"])


# VCMR: 2 queries x 2 videos x 3 events. Events: the whole video, its first half, its second half.
PROPOSALS = np.array([[0.0, 1.0], [0.0, 0.5], [0.5, 1.0]])
DURATIONS = np.array([10.0, 20.0])
VCMR_POSITIVES = np.array([0, 1])
GT_SPANS = np.array([[0.0, 5.0], [12.0, 20.0]])
EVENT_SCORES = np.array(
    [
        # query 0 (video 0, [0, 5]): top-2 of video 0 are e1 [0, 5] (IoU 1) and e0 [0, 10] (IoU 0.5);
        # corpus order: v0e1 .9 (IoU 1), v1e0 .8, v0e0 .5 (IoU .5), v1e2 .3
        [[0.5, 0.9, 0.1], [0.8, 0.2, 0.3]],
        # query 1 (video 1, [12, 20]): IoU of v1's events: e0 [0, 20] 0.4, e1 [0, 10] 0, e2 [10, 20] 0.8;
        # top-2 of v1 are e1 .85 and e2 .4; corpus order: v0e0 .9, v1e1 .85, v0e1 .7, v1e2 .4 (IoU .8)
        [[0.9, 0.7, 0.6], [0.3, 0.85, 0.4]],
    ]
)


def _vcmr(chunks=((0, 2),), scores=EVENT_SCORES, top_events=2, max_proposals=4, thresholds=(0.5, 0.9), ks=(1, 3, 4)):
    recall = VcmrRecall(
        PROPOSALS, DURATIONS, top_events=top_events, max_proposals=max_proposals, iou_thresholds=thresholds, ks=ks
    )
    for lo, hi in chunks:
        recall.add(scores[lo:hi], VCMR_POSITIVES[lo:hi], GT_SPANS[lo:hi])
    return recall.result()


def test_vcmr_recall_hand_made():
    assert _vcmr() == {
        "IoU0.5": {"R1": 50.0, "R3": 50.0, "R4": 100.0},
        "IoU0.9": {"R1": 50.0, "R3": 50.0, "R4": 50.0},
    }


def test_vcmr_recall_is_the_same_in_query_chunks():
    assert _vcmr(chunks=((0, 1), (1, 2))) == _vcmr()


def test_vcmr_max_proposals_and_top_events_cut_the_list():
    # Only 3 proposals: query 1's hit (4th) is cut.
    assert _vcmr(max_proposals=3)["IoU0.5"] == {"R1": 50.0, "R3": 50.0, "R4": 50.0}
    # All 3 events per video: query 1's top 4 becomes v0e0, v1e1, v0e1, v0e2: no hit.
    assert _vcmr(top_events=3)["IoU0.5"] == {"R1": 50.0, "R3": 50.0, "R4": 50.0}


def test_vcmr_constant_scorer_gets_no_credit():
    result = _vcmr(scores=np.zeros((2, 2, 3)), top_events=3, max_proposals=6, ks=(1, 5, 6))
    # Tied proposals rank worst first: the one perfect proposal of query 0 comes last.
    assert result["IoU0.9"] == {"R1": 0.0, "R5": 0.0, "R6": 50.0}


def test_vcmr_proposal_on_another_video_is_no_hit():
    # The best proposal, video 1's [0, 10], matches the moment's span but not its video 0.
    recall = VcmrRecall(PROPOSALS, DURATIONS, top_events=3, max_proposals=6, iou_thresholds=[0.9], ks=[1, 2])
    recall.add(np.array([[[0.5, 0.0, 0.0], [0.0, 0.9, 0.0]]]), np.array([0]), np.array([[0.0, 10.0]]))
    assert recall.result() == {"IoU0.9": {"R1": 0.0, "R2": 100.0}}


def test_vcmr_rejects_bad_shapes_and_empty_results():
    recall = VcmrRecall(PROPOSALS, DURATIONS, top_events=2, max_proposals=4, iou_thresholds=[0.5], ks=[1])
    with pytest.raises(ValueError, match="expected scores"):
        recall.add(EVENT_SCORES[:, :1], VCMR_POSITIVES, GT_SPANS)
    with pytest.raises(ValueError, match="no queries"):
        recall.result()


def test_bootstrap_of_identical_models_has_zero_width_difference():
    ranks = np.array([1, 3, 8, 20, 2, 1, 50])
    assert bootstrap_sumr(ranks, [1, 5, 10, 100], reference=ranks.copy()) == (0.0, 0.0)


def _replicates_by_copying(values, reference, samples, seed, queries=None, runs=None):
    """bootstrap_replicates written out plainly: every replicate's drawn queries copied, then averaged."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, values.shape[1], size=(samples, queries or values.shape[1]))

    def replicate(v):
        chosen = rng.integers(0, v.shape[0], size=(samples, runs if runs and v.shape[0] > 1 else v.shape[0]))
        per_run = v[:, drawn].mean(axis=2)
        return np.take_along_axis(per_run.T, chosen, axis=1).mean(axis=1)

    return replicate(values) - (replicate(reference) if reference is not None else 0.0)


@pytest.mark.parametrize("grain", [100.0, 50.0, 0.5, None])  # recalls, rival scores, halves, any float
def test_bootstrap_replicates_are_bit_identical_to_averaging_copies(grain):
    rng = np.random.default_rng(7)
    values, reference = rng.random((3, 401)), rng.random((2, 401))
    if grain is not None:
        values, reference = np.round(values * 4) * grain, np.round(reference * 4) * grain
    assert _sums_exactly(values, 1000) == (grain is not None)  # the count-product path, else the copies
    for queries, runs in ((None, None), (1000, 5)):
        fast = bootstrap_replicates(values, reference, samples=200, seed=3, queries=queries, runs=runs)
        plain = _replicates_by_copying(values, reference, 200, 3, queries, runs)
        assert np.array_equal(fast, plain), (grain, queries)  # equal bits, not merely close
    one = bootstrap_replicates(values[0], samples=50, seed=1)
    assert np.array_equal(one, _replicates_by_copying(values[:1], None, 50, 1))


def test_bootstrap_of_a_uniform_gap_is_exact():
    # every query ranks 1 vs every query ranks 7: R1 and R5 differ by 100 each whatever the resample
    low, high = bootstrap_sumr(np.ones(30, int), [1, 5, 10], reference=np.full(30, 7))
    assert low == pytest.approx(200.0) and high == pytest.approx(200.0)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_queries():
    rng = np.random.default_rng(1)
    small, large = rng.integers(1, 30, size=50), rng.integers(1, 30, size=5000)
    for ranks in (small, large):
        point = prvr_metrics(ranks, [1, 5, 10])["SumR"]
        low, high = bootstrap_sumr(ranks, [1, 5, 10], seed=3)
        assert low <= point <= high

    def width(r):
        return np.subtract(*reversed(bootstrap_sumr(r, [1, 5, 10], seed=3)))

    assert width(large) < width(small) / 4  # width ~ 1 / sqrt(n): 100x the queries, ~10x narrower


def test_bootstrap_rejects_unpaired_reference():
    with pytest.raises(ValueError, match="does not pair"):
        bootstrap_sumr(np.array([1, 2]), [1], reference=np.array([1, 2, 3]))


def _vcmr_by_sorting(scores, positives, gt_spans, proposals, durations, top_events, max_proposals, thresholds, ks):
    """VCMR recall as the definition reads: per video its top_events proposals (score descending, ties with
    the lower IoU first, then event order), the corpus list of them all in the same order, hits in its top K."""
    hits = np.zeros((len(thresholds), len(ks)), dtype=int)
    for q in range(len(scores)):
        items = []  # (-score, IoU, flat index) of every kept proposal
        for v in range(scores.shape[1]):
            spans = proposals * durations[v]
            iou = temporal_iou(spans, gt_spans[q][None, :]) if v == positives[q] else np.zeros(len(spans))
            kept = sorted(range(len(spans)), key=lambda e: (-scores[q, v, e], iou[e], e))[:top_events]
            items += [(-scores[q, v, e], iou[e], len(items) + i) for i, e in enumerate(kept)]
        ranked = [iou for _, iou, _ in sorted(items)][:max_proposals]
        for i, t in enumerate(thresholds):
            hits[i] += [any(x >= t for x in ranked[:k]) for k in ks]
    return hits


@pytest.mark.parametrize("seed", range(6))
def test_vcmr_recall_equals_sorting_every_proposal_with_ties(seed):
    """The fast count (other videos by their best scores only) equals the corpus sort it replaces, with many
    tied scores (4 distinct values) and a proposal cap that cuts into the list."""
    rng = np.random.default_rng(seed)
    n, nv, ne = 7, 9, 6
    scores = rng.integers(0, 4, size=(n, nv, ne)).astype(float) / 4
    positives = rng.integers(0, nv, size=n)
    durations = rng.uniform(5, 20, size=nv)
    starts = rng.uniform(0, 0.7, size=ne)
    proposals = np.stack([starts, starts + rng.uniform(0.1, 0.3, size=ne)], 1)
    gt = np.stack([durations[positives] * 0.2, durations[positives] * 0.5], 1)
    seen = []
    for top, cap in ((3, 20), (6, 11), (2, 5), (8, 30)):  # (8, 30): more events kept than a video has
        recall = VcmrRecall(
            proposals, durations, top_events=top, max_proposals=cap, iou_thresholds=[0.1, 0.3, 0.5], ks=[1, 3, 10, 30]
        )
        recall.add(scores[:4], positives[:4], gt[:4])
        recall.add(scores[4:], positives[4:], gt[4:])  # chunked as evaluate feeds it
        expected = _vcmr_by_sorting(
            scores, positives, gt, proposals, durations, top, cap, [0.1, 0.3, 0.5], [1, 3, 10, 30]
        )
        np.testing.assert_array_equal(recall.hits, expected)
        seen += expected.ravel().tolist()
    assert max(seen) > 0 and min(seen) < n  # hits and misses: the comparison could fail
    with pytest.raises(ValueError, match=r"IoU thresholds must lie in \(0, 1\]"):
        VcmrRecall(proposals, durations, top_events=2, max_proposals=4, iou_thresholds=[0.0], ks=[1])
    for top, cap in ((0, 4), (2, 0)):
        with pytest.raises(ValueError, match=f"must be at least 1, got {top}, {cap}"):
            VcmrRecall(proposals, durations, top_events=top, max_proposals=cap, iou_thresholds=[0.5], ks=[1])
