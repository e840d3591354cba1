"""Rival probes (propy.evaluation.probes) on small hand-worked examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from propy.data.annotations import Record
from propy.errors import DataError
from propy.evaluation.metrics import bootstrap_mean
from propy.evaluation.probes import (
    load_rivals,
    localisation_hits,
    mean_pair_cosine,
    pairwise_wins,
    probe_table,
    separability,
    text_pairs,
)


def rec(vid, desc_id):
    return Record(vid, desc_id, "a red circle", 10.0, (0.0, 1.0))


def test_pairwise_wins_count_ties_half_and_average_over_rivals():
    scores = np.array([[3.0, 1.0, 3.0], [0.0, 2.0, 5.0], [1.0, 1.0, 1.0]])
    wins = pairwise_wins(scores, np.array([0, 1, 2]), [[1, 2], [2], []])
    # query 0: beats video 1 (1), ties video 2 (0.5) -> 0.75; query 1: loses to video 2; query 2: no rival
    assert wins[:2].tolist() == [0.75, 0.0]
    assert math.isnan(wins[2])


def test_bootstrap_interval_of_a_mean():
    assert bootstrap_mean(np.full(20, 0.5)) == (0.5, 0.5)
    low, high = bootstrap_mean(np.array([0.0, 1.0] * 50))
    assert 0.35 < low < 0.5 < high < 0.65  # sd of the mean 0.05: about +-0.1
    with pytest.raises(ValueError):
        bootstrap_mean(np.array([]))


def test_localisation_takes_the_best_event_and_the_worse_iou_on_ties():
    proposals = np.array([[0.0, 0.5], [0.5, 1.0], [0.0, 1.0]])  # x 10 s: [0, 5], [5, 10], [0, 10]
    spans = np.array([[5.0, 9.0]] * 3)  # IoU with the events: 0, 0.8, 0.4
    scores = np.array([[0.1, 0.9, 0.5], [0.1, 0.5, 0.9], [0.9, 0.9, 0.1]])
    hits = localisation_hits(scores, proposals, spans, np.full(3, 10.0), 0.5)
    assert hits.tolist() == [True, False, False]
    assert localisation_hits(scores[1:2], proposals, spans[:1], np.array([10.0]), 0.4).tolist() == [True]


def test_text_pairs_match_a_query_with_its_rival_videos_query_of_the_same_kind():
    records = [rec("v0", "a0"), rec("v1", "a1"), rec("v0", "c0"), rec("v2", "o2")]
    kinds = ["appearance", "appearance", "composition", "order"]
    pairs = text_pairs(records, kinds, [[1], [0], [1], [1]], np.array([0, 1, 0, 2]))
    assert pairs == {"appearance": [(0, 1), (1, 0)]}  # composition is not text-paired; v1 has no order query


def test_cosines():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    assert mean_pair_cosine(emb, [(0, 2)]) == pytest.approx(1 / math.sqrt(2))
    assert mean_pair_cosine(emb, [(0, 1), (0, 0)]) == pytest.approx(0.5)
    out = separability(emb, {"order": [(0, 2)]})
    # all distinct pairs: cos(0,1) = 0, cos(0,2) = cos(1,2) = 0.7071 -> mean 0.4714
    assert out["order"] == pytest.approx(1 / math.sqrt(2))
    assert out["all_queries"] == pytest.approx(2 / 3 / math.sqrt(2))


def test_probe_table_per_kind():
    table = probe_table(
        ["a", "a", "b"], np.array([1, 3, 2]), np.array([1.0, 0.5, np.nan]), np.array([True, False, True]), [1, 5], 0.5
    )
    a, b = table["a"], table["b"]
    assert (a["n"], a["n_rival"], a["pairwise"], a["ci"][0] <= 75 <= a["ci"][1]) == (2, 2, 75.0, True)
    assert (a["R1"], a["R5"], a["SumR"], a["loc_IoU0.5"]) == (50.0, 100.0, 150.0, 50.0)
    assert (b["n"], b["n_rival"], "pairwise" in b, b["R1"], b["loc_IoU0.5"]) == (1, 0, False, 0.0, 100.0)


def test_load_rivals_maps_to_gallery_indices(tmp_path):
    path = tmp_path / "rivals.json"
    path.write_text(json.dumps({"d0": ["v2"], "d1": ["v0", "v2"]}))
    records = [rec("v0", "d0"), rec("v2", "d1"), rec("v2", "d9")]
    assert load_rivals(path, records, ["v0", "v1", "v2"]) == [[2], [0, 2], []]
    with pytest.raises(DataError, match="'v2' of 'd0' is not in the gallery"):
        load_rivals(path, records[:1], ["v0", "v1"])
