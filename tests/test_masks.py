"""Attention masks: literal matrices worked out by hand, properties, column layout."""

from __future__ import annotations

import numpy as np
import pytest

from propy.errors import ConfigError
from propy.model.masks import (
    INTERACTIONS,
    event_attention_mask,
    event_node_mask,
    frame_prompt_mask,
)
from propy.model.pyramid import Pyramid


def _bool(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


# Nf = 4, overlaps [0, 1]: e0 = [0,4) (level 2), e1 = [0,2), e2 = [2,4) (level 1).
NF4 = Pyramid.from_overlaps(4, [0, 1])
NF4_FRAMES = [
    [1, 1, 1, 1],
    [1, 1, 0, 0],
    [0, 0, 1, 1],
]
NF4_EVENTS = {
    "full": [[1, 1, 1], [1, 1, 0], [1, 0, 1]],
    "descendants": [[1, 1, 1], [0, 1, 0], [0, 0, 1]],
    "ancestors": [[1, 0, 0], [1, 1, 0], [1, 0, 1]],
    "none": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "dense": [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
}

# Nf = 8, overlaps [0, 1, 1]: e0 = [0,8); e1 = [0,4), e2 = [2,6), e3 = [4,8);
# e4 = [0,2), e5 = [2,4), e6 = [4,6), e7 = [6,8).
NF8 = Pyramid.from_overlaps(8, [0, 1, 1])
NF8_FRAMES = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0, 0, 0],
    [0, 0, 1, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 1, 1, 1, 1],
    [1, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1],
]
NF8_EVENTS = {
    "full": [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 1, 1, 0, 0],
        [1, 0, 1, 0, 0, 1, 1, 0],
        [1, 0, 0, 1, 0, 0, 1, 1],
        [1, 1, 0, 0, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 1, 0, 0],
        [1, 0, 1, 1, 0, 0, 1, 0],
        [1, 0, 0, 1, 0, 0, 0, 1],
    ],
    "descendants": [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [0, 1, 0, 0, 1, 1, 0, 0],
        [0, 0, 1, 0, 0, 1, 1, 0],
        [0, 0, 0, 1, 0, 0, 1, 1],
        [0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ],
    "ancestors": [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 0, 0, 0],
        [1, 0, 0, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 1, 0, 0],
        [1, 0, 1, 1, 0, 0, 1, 0],
        [1, 0, 0, 1, 0, 0, 0, 1],
    ],
    "none": [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ],
    "dense": [[1] * 8] * 8,
}


@pytest.mark.parametrize("variant", INTERACTIONS)
def test_event_node_mask_nf4_by_hand(variant):
    mask = event_node_mask(NF4, variant)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.hstack([_bool(NF4_EVENTS[variant]), _bool(NF4_FRAMES)]))


@pytest.mark.parametrize("variant", INTERACTIONS)
def test_event_node_mask_nf8_by_hand(variant):
    mask = event_node_mask(NF8, variant)
    assert mask.shape == (8, 16)
    np.testing.assert_array_equal(mask, np.hstack([_bool(NF8_EVENTS[variant]), _bool(NF8_FRAMES)]))


def test_frame_prompt_mask_by_hand():
    np.testing.assert_array_equal(frame_prompt_mask(NF4), _bool([[1, 1], [1, 0], [0, 1]]))
    # columns: the prompt copies of e4..e7 (level 1, left to right)
    expected = _bool(
        [
            [1, 1, 1, 1],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 1, 1],
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_array_equal(frame_prompt_mask(NF8), expected)


def test_unknown_variant_lists_the_choices():
    expected = "'sideways'; expected one of full, descendants, ancestors, none, dense"
    with pytest.raises(ConfigError, match=expected):
        event_node_mask(NF4, "sideways")


PYRAMIDS = [
    NF4,
    NF8,
    Pyramid.from_overlaps(32, [0, 1, 1, 1, 1]),
    Pyramid.from_overlaps(16, [1, 0, 1]),
    Pyramid.from_windows(8, [(2, 1), (3, 2), (3, 1)]),
    Pyramid.from_windows(10, [(2, 2), (3, 1)]),  # 10 -> 5 -> 3: no single top event
    Pyramid.from_windows(12, [(3, 3), (2, 1), (3, 1)]),
    Pyramid.from_windows(8, [(8, 1)]),
]


@pytest.mark.parametrize("pyr", PYRAMIDS, ids=lambda p: f"{p.num_frames}-{p.windows}")
def test_mask_properties(pyr):
    ne, nf = pyr.num_events, pyr.num_frames
    masks = {variant: event_node_mask(pyr, variant) for variant in INTERACTIONS}
    full, desc, anc = (masks[v][:, :ne] for v in ("full", "descendants", "ancestors"))
    np.testing.assert_array_equal(full, full.T)
    np.testing.assert_array_equal(desc | anc, full)
    np.testing.assert_array_equal(desc, anc.T)
    np.testing.assert_array_equal(desc & anc, np.eye(ne, dtype=bool))
    assert masks["dense"][:, :ne].all()
    np.testing.assert_array_equal(masks["none"][:, :ne], np.eye(ne, dtype=bool))
    for variant, mask in masks.items():
        assert mask.shape == (ne, ne + nf)
        assert mask[np.arange(ne), np.arange(ne)].all(), variant
        for i, (start, end) in enumerate(pyr.event_spans):
            np.testing.assert_array_equal(np.flatnonzero(mask[i, ne:]), np.arange(start, end))
    top = pyr.level_slice(pyr.num_levels)
    assert masks["full"][top, ne:].any(axis=0).all()  # the top level covers the video
    if pyr.counts[-1] == 1:
        assert masks["full"][0, ne:].all()
    # ADI pairs are nested spans: one event's frames lie inside the other's
    spans = pyr.event_spans
    for i, j in zip(*np.nonzero(full)):
        (a, b), (c, d) = spans[i], spans[j]
        assert (a <= c and d <= b) or (c <= a and b <= d)


@pytest.mark.parametrize("pyr", PYRAMIDS, ids=lambda p: f"{p.num_frames}-{p.windows}")
def test_frame_prompts_follow_the_frames_below(pyr):
    prompts = frame_prompt_mask(pyr)
    assert prompts.shape == (pyr.num_events, pyr.counts[1])
    level1_spans = [pyr.event_spans[e] for e in pyr.level1_events]
    for i, (start, end) in enumerate(pyr.event_spans):
        inside = [start <= s and e <= end for s, e in level1_spans]
        np.testing.assert_array_equal(prompts[i], inside)


def test_event_attention_mask_nf4_by_hand():
    # columns: e0 e1 e2 | prompt copies (e1: p0 p1, e2: p0 p1) | f0 t0-2, f1, f2, f3
    mask = event_attention_mask(NF4, "full", tokens_per_frame=3, frame_prompts=2)
    assert mask.dtype == np.float32
    assert mask.shape == (3, 3 + 2 * 2 + 4 * 3)
    allowed = _bool(
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        ]
    )
    np.testing.assert_array_equal(mask, np.where(allowed, 0.0, -np.inf))
    # the variant changes events only: prompts and frames stay with the span
    none = event_attention_mask(NF4, "none", tokens_per_frame=3, frame_prompts=2)
    np.testing.assert_array_equal(none[0], [0, -np.inf, -np.inf] + [0.0] * 16)


def test_event_attention_mask_nf8_columns():
    ne, n1, prompts, tokens = 8, 4, 2, 3
    mask = event_attention_mask(NF8, "full", tokens_per_frame=tokens, frame_prompts=prompts)
    assert mask.shape == (ne, ne + prompts * n1 + 8 * tokens)
    assert set(np.unique(mask)) == {0.0, -np.inf}
    # copy 1 of level-1 event e6 = [4,6): seen by e0, e2 = [2,6), e3 = [4,8) and e6
    np.testing.assert_array_equal(np.flatnonzero(mask[:, ne + 2 * prompts + 1] == 0), [0, 2, 3, 6])
    # token 0 of frame 3: seen by e0, e1 = [0,4), e2 = [2,6), e5 = [2,4)
    column = ne + prompts * n1 + 3 * tokens + 0
    np.testing.assert_array_equal(np.flatnonzero(mask[:, column] == 0), [0, 1, 2, 5])
    # all tokens of one frame share a column pattern
    first = ne + prompts * n1 + 3 * tokens
    np.testing.assert_array_equal(mask[:, first], mask[:, first + 2])


def test_event_attention_mask_without_frame_prompts():
    mask = event_attention_mask(NF8, "descendants", tokens_per_frame=2, frame_prompts=0)
    nodes = event_node_mask(NF8, "descendants")
    expected = np.hstack([nodes[:, :8], np.repeat(nodes[:, 8:], 2, axis=1)])
    np.testing.assert_array_equal(mask == 0, expected)


def test_event_attention_mask_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="tokens_per_frame must be at least 1, got 0"):
        event_attention_mask(NF4, "full", tokens_per_frame=0, frame_prompts=2)
    with pytest.raises(ConfigError, match="frame_prompts must be at least 0, got -1"):
        event_attention_mask(NF4, "full", tokens_per_frame=1, frame_prompts=-1)
