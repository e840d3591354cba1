"""propy.evaluation.claims: Holm's procedure, the MDE, the bootstrap p-value and reachability, each
against a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from propy.evaluation.claims import (
    bootstrap_p_value,
    holm,
    minimum_detectable_effect,
    paired_test,
    projected_mde,
    reachable,
)
from propy.evaluation.metrics import bootstrap_replicates
from propy.model.pyramid import build_pyramid


def test_holm_worked_example():
    # m = 4, alpha 0.05. Sorted: d 0.005 <= 0.05/4 = 0.0125 rejected; a 0.01 <= 0.05/3 = 0.0167 rejected;
    # c 0.03 > 0.05/2 = 0.025: not rejected, and the procedure stops, so b (0.04 <= 0.05/1) is not either.
    # Adjusted: d 4 x 0.005 = 0.02; a max(0.02, 3 x 0.01) = 0.03; c max(0.03, 2 x 0.03) = 0.06;
    # b max(0.06, 0.04) = 0.06.
    result = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}, 0.05)
    assert list(result) == ["a", "b", "c", "d"]  # the given order
    assert {k: r["rejected"] for k, r in result.items()} == {"a": True, "b": False, "c": False, "d": True}
    assert {k: r["p_holm"] for k, r in result.items()} == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert {k: r["alpha_holm"] for k, r in result.items()} == pytest.approx(
        {"d": 0.0125, "a": 0.05 / 3, "c": 0.025, "b": 0.05}
    )
    # one test is not corrected; adjusted p-values stop at 1
    assert holm({"x": 0.04}, 0.05)["x"] == {"alpha_holm": 0.05, "p_holm": 0.04, "rejected": True}
    assert holm({"x": 0.6, "y": 0.7}, 0.05)["x"]["p_holm"] == 1.0
    with pytest.raises(ValueError):
        holm({"x": 0.1}, 1.5)


def test_minimum_detectable_effect_worked_example():
    # normal table: z_0.975 = 1.95996, z_0.80 = 0.84162: (1.95996 + 0.84162) x 2 = 5.60317
    assert minimum_detectable_effect(2.0, 0.05, 0.8) == pytest.approx(5.60317, abs=1e-4)
    # at Holm's first level of 4 tests, 0.0125: z_0.99375 = 2.49771, so (2.49771 + 0.84162) x 2 = 6.67866
    assert minimum_detectable_effect(2.0, 0.0125, 0.8) == pytest.approx(6.67866, abs=1e-4)
    assert minimum_detectable_effect(0.0, 0.05, 0.8) == 0.0
    with pytest.raises(ValueError):
        minimum_detectable_effect(1.0, 0.05, 1.0)


def test_bootstrap_p_value_counts_replicates_beyond_zero():
    # one of four on the far side: 2 (1 + 1) / (4 + 1) = 0.8
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    assert bootstrap_p_value(np.full(1999, 5.0)) == pytest.approx(2 / 2000)  # never 0
    assert bootstrap_p_value(np.zeros(10)) == 1.0  # no change at all


def test_paired_test_se_matches_the_paired_variance():
    # one run per side: the bootstrap's SE of the mean paired difference is sd(d) / sqrt(n)
    rng = np.random.default_rng(5)
    diff = rng.normal(0.0, 10.0, size=400)
    test = paired_test(diff, np.zeros(400), alpha=0.05, power=0.8, samples=4000, level=0.95)
    assert test["se"] == pytest.approx(np.std(diff, ddof=1) / np.sqrt(400), rel=0.08)
    assert test["mde"] == pytest.approx(minimum_detectable_effect(test["se"], 0.05, 0.8))
    assert test["delta"] == pytest.approx(diff.mean()) and test["ci"][0] < test["delta"] < test["ci"][1]


def test_a_projection_at_the_observed_design_is_the_bootstrap_itself():
    rng = np.random.default_rng(2)
    values, reference = rng.normal(50, 20, size=(3, 60)), rng.normal(45, 20, size=(3, 60))
    same = bootstrap_replicates(values, reference, 300, seed=4, queries=60, runs=3)
    assert np.array_equal(same, bootstrap_replicates(values, reference, 300, seed=4))


def test_projected_mde_scales_with_queries_and_seeds_as_worked_out():
    # one run per side: SE = sd(d) / sqrt(n), so four times the queries halve the MDE
    rng = np.random.default_rng(6)
    diff = rng.normal(0.0, 10.0, size=400)
    kw = {"alpha": 0.05, "power": 0.8, "samples": 4000}
    at_400 = projected_mde(diff, np.zeros(400), queries=400, runs=1, **kw)
    assert at_400 == pytest.approx(minimum_detectable_effect(np.std(diff, ddof=1) / 20, 0.05, 0.8), rel=0.08)
    assert projected_mde(diff, np.zeros(400), queries=1600, runs=1, **kw) == pytest.approx(at_400 / 2, rel=0.08)
    # seeds alone: run means 0 and 12 (no query noise). Drawing S runs with replacement, the mean's
    # variance is var_0(run means) / S = 36 / S: SE 6 / sqrt(S); the one-run reference adds nothing.
    runs = np.repeat([[0.0], [12.0]], 50, axis=1)
    for seeds in (2, 8):
        se = 6.0 / np.sqrt(seeds)
        got = projected_mde(runs, np.zeros(50), queries=50, runs=seeds, **kw)
        assert got == pytest.approx(minimum_detectable_effect(se, 0.05, 0.8), rel=0.08)


def test_reachability_of_a_tiny_pyramid_by_hand():
    # Nf = 4, flags [0, 0]: level 1 events [0, 2) and [2, 4), level 2 [0, 4); on an 8 s video: [0, 8], [0, 4], [4, 8]
    deep = build_pyramid(4, [0, 0]).proposals()
    shallow = build_pyramid(4, [0]).proposals()  # [0, 4], [4, 8] only
    moments = np.array([[0.0, 4.0], [2.0, 6.0], [3.0, 5.0], [6.0, 8.0]])
    durations = np.full(4, 8.0)
    # (0, 4): IoU 1 with [0, 4]; (2, 6): 4/8 = 0.5 with [0, 8]; (3, 5): at best 2/8 = 0.25;
    # (6, 8): 2/4 = 0.5 with [4, 8]
    assert reachable(deep, durations, moments, 0.5).tolist() == [True, True, False, True]
    # without the whole-video event, (2, 6) has at best 2/6 with either half
    assert reachable(shallow, durations, moments, 0.5).tolist() == [True, False, False, True]
    assert reachable(shallow, durations, moments, 0.3).tolist() == [True, True, False, True]
