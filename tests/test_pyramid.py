"""Pyramid counts, spans, composition, ancestry and config errors, checked by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from propy.errors import ConfigError
from propy.model.pyramid import Pyramid, build_pyramid

PAPER_WINDOWS = [[2, 2], [2, 1], [3, 2], [3, 2], [3, 1]]
PAPER_OVERLAPS = [0, 1, 1, 1, 1]


def test_paper_pyramid_from_both_forms_is_the_same():
    by_windows = Pyramid.from_windows(32, PAPER_WINDOWS)
    by_overlaps = Pyramid.from_overlaps(32, PAPER_OVERLAPS)
    assert by_windows == by_overlaps
    assert by_windows.counts == (32, 16, 15, 7, 3, 1)
    assert by_overlaps.windows == ((2, 2), (2, 1), (3, 2), (3, 2), (3, 1))
    assert by_windows.event_spans == by_overlaps.event_spans
    assert by_windows.num_levels == 5
    assert by_windows.num_events == 42
    assert by_windows.num_nodes == 74
    assert by_windows.level_counts_top_first == (1, 3, 7, 15, 16)
    assert by_windows.event_levels == (5,) + (4,) * 3 + (3,) * 7 + (2,) * 15 + (1,) * 16


def test_paper_pyramid_composed_windows():
    pyr = Pyramid.from_windows(32, PAPER_WINDOWS)
    # by hand: level 5 over 3 = (3,1) then (3,2) -> window (3-1)*2+3 = 7, stride 2
    assert pyr.composed(5, 3) == (7, 2)
    assert pyr.composed(4, 2) == (7, 4)
    assert [pyr.composed(k, 0) for k in range(1, 6)] == [(2, 2), (4, 2), (8, 4), (16, 8), (32, 8)]
    assert [pyr.composed(k + 1, k) for k in range(5)] == list(pyr.windows)
    assert pyr.event_spans[:4] == ((0, 32), (0, 16), (8, 24), (16, 32))
    assert pyr.event_spans[-1] == (30, 32)


@pytest.mark.parametrize(
    ("num_frames", "overlaps", "windows", "counts"),
    [
        (4, [0], [(2, 2)], (4, 2)),
        (4, [1], [(2, 1)], (4, 3)),
        (4, [0, 1], [(2, 2), (2, 1)], (4, 2, 1)),
        (4, [1, 0], [(2, 1), (3, 1)], (4, 3, 1)),
        (8, [0, 1, 1], [(2, 2), (2, 1), (3, 1)], (8, 4, 3, 1)),
        (8, [1, 1, 1], [(2, 1), (3, 2), (3, 1)], (8, 7, 3, 1)),
        (8, [0, 0], [(2, 2), (2, 2)], (8, 4, 2)),
        (16, [0, 0, 0, 0], [(2, 2), (2, 2), (2, 2), (2, 1)], (16, 8, 4, 2, 1)),
        (16, [1, 1, 1], [(2, 1), (3, 2), (3, 2)], (16, 15, 7, 3)),
        (16, [1, 0, 1], [(2, 1), (3, 4), (2, 1)], (16, 15, 4, 3)),
        (32, [0], [(2, 2)], (32, 16)),
        (32, [0, 1], [(2, 2), (2, 1)], (32, 16, 15)),
    ],
)
def test_counts_and_windows_from_both_forms(num_frames, overlaps, windows, counts):
    by_overlaps = Pyramid.from_overlaps(num_frames, overlaps)
    assert by_overlaps.windows == tuple(windows)
    assert by_overlaps.counts == counts
    assert Pyramid.from_windows(num_frames, windows) == by_overlaps


def test_top_level_has_one_event_whatever_its_flag():
    assert Pyramid.from_overlaps(8, [0, 1, 0]) == Pyramid.from_overlaps(8, [0, 1, 1])
    assert Pyramid.from_overlaps(8, [0, 1, 0]).counts == (8, 4, 3, 1)


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_overlap_levels_have_the_stated_frame_segments(length):
    # level i: segments of 2^i frames, stride 2^i (flag 0) or 2^(i-1) (flag 1), below the top
    for bits in range(2**length):
        flags = [(bits >> i) & 1 for i in range(length)]
        pyr = Pyramid.from_overlaps(16, flags)
        for i, flag in enumerate(flags, start=1):
            width, stride = pyr.composed(i, 0)
            assert width == 2**i
            if 2**i < 16:
                assert stride == 2**i // (1 + flag)
                assert pyr.counts[i] == (16 - 2**i) // stride + 1
            else:
                assert pyr.counts[i] == 1


def test_single_global_event():
    pyr = Pyramid.from_windows(8, [(8, 1)])
    assert pyr.counts == (8, 1)
    assert Pyramid.from_windows(8, [(8, 9)]).counts == (8, 1)  # one node: its stride is moot
    assert pyr.event_spans == ((0, 8),)
    np.testing.assert_array_equal(pyr.proposals(), [[0.0, 1.0]])


def test_spans_and_proposals_nf8_overlaps_011_by_hand():
    pyr = build_pyramid(8, [0, 1, 1])
    assert pyr.event_spans == (
        (0, 8),
        (0, 4),
        (2, 6),
        (4, 8),
        (0, 2),
        (2, 4),
        (4, 6),
        (6, 8),
    )
    assert pyr.event_levels == (3, 2, 2, 2, 1, 1, 1, 1)
    assert pyr.level1_events == (4, 5, 6, 7)
    assert pyr.level_slice(3) == slice(0, 1)
    assert pyr.level_slice(2) == slice(1, 4)
    assert pyr.level_slice(1) == slice(4, 8)
    proposals = pyr.proposals()
    assert proposals.dtype == np.float64
    np.testing.assert_array_equal(
        proposals,
        [[0, 1], [0, 0.5], [0.25, 0.75], [0.5, 1], [0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1]],
    )


def test_spans_nf8_overlapping_windows_by_hand():
    # 8 -> 7 (pairs, stride 1) -> 3 (three pairs, stride 2) -> 1
    pyr = build_pyramid(8, [[2, 1], [3, 2], [3, 1]])
    assert pyr.composed(2, 0) == (4, 2)
    assert pyr.composed(3, 1) == (7, 2)
    assert pyr.composed(3, 0) == (8, 2)
    assert pyr.event_spans == (
        (0, 8),
        (0, 4),
        (2, 6),
        (4, 8),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
        (5, 7),
        (6, 8),
    )
    assert pyr.level1_events == tuple(range(4, 11))


def _random_pyramids(num: int) -> list[Pyramid]:
    """Valid pyramids with arbitrary (c, o): every step picks a window that divides."""
    rng = random.Random(0)
    pyramids = []
    while len(pyramids) < num:
        n = rng.randint(2, 40)
        nf, windows = n, []
        while n > 1 and len(windows) < 5:
            options = [(c, o) for c in range(1, n + 1) for o in range(1, 5) if (n - c) % o == 0]
            c, o = rng.choice(options)
            windows.append((c, o))
            n = (n - c) // o + 1
        if windows:
            pyramids.append(Pyramid.from_windows(nf, windows))
    return pyramids


@pytest.mark.parametrize("pyr", _random_pyramids(40), ids=lambda p: f"{p.num_frames}-{p.windows}")
def test_composed_spans_hull_the_children(pyr):
    """A level-k node spans from its first child's start to its last child's end.

    (Hull, not union: with c < o, e.g. overlaps [1, 0, ...], a window skips nodes.)
    """
    nf = pyr.num_frames
    spans_by_level = {0: [(f, f + 1) for f in range(nf)]}
    for k in range(1, pyr.num_levels + 1):
        spans_by_level[k] = list(pyr.event_spans[pyr.level_slice(k)])
        c, o = pyr.windows[k - 1]
        assert len(spans_by_level[k]) == pyr.counts[k]
        for i, span in enumerate(spans_by_level[k]):
            children = spans_by_level[k - 1][i * o : i * o + c]
            assert len(children) == c
            assert span == (children[0][0], children[-1][1])
        assert spans_by_level[k][-1][1] == nf  # exact division: the last node reaches the end


def test_overlaps_10_skip_a_level1_node_but_keep_spans():
    # level 2 = [0,4) [4,8) from level-1 pairs with stride 1: window (3, 4) skips [3,5)
    pyr = Pyramid.from_overlaps(8, [1, 0])
    assert pyr.windows == ((2, 1), (3, 4))
    assert pyr.event_spans[:2] == ((0, 4), (4, 8))
    level1 = pyr.level_slice(1).start
    assert pyr.event_spans[level1 + 3] == (3, 5)
    assert not pyr.is_ancestor(0, level1 + 3) and not pyr.is_ancestor(1, level1 + 3)


def test_ancestry_nf4_by_hand():
    pyr = build_pyramid(4, [0, 1])
    # nodes: e0 = [0,4), e1 = [0,2), e2 = [2,4), then frames f0..f3
    expected = np.array(
        [
            [0, 1, 1, 1, 1, 1, 1],
            [0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert pyr.ancestry().dtype == bool
    np.testing.assert_array_equal(pyr.ancestry(), expected)


def test_is_ancestor_nf8_by_hand():
    pyr = build_pyramid(8, [0, 1, 1])  # events as in the spans test, frames are 8..15
    assert pyr.is_ancestor(0, 15)
    assert pyr.is_ancestor(2, 5)  # [2,6) over [2,4)
    assert pyr.is_ancestor(2, 6)  # [2,6) over [4,6)
    assert not pyr.is_ancestor(1, 6)  # [0,4) and [4,6) are disjoint
    assert not pyr.is_ancestor(5, 2)  # descendants are not ancestors
    assert not pyr.is_ancestor(4, 4)  # strict
    assert pyr.is_ancestor(5, 8 + 3)
    assert not pyr.is_ancestor(5, 8 + 4)
    assert not pyr.is_ancestor(8, 9)  # frames have no descendants
    with pytest.raises(ValueError, match="node 16"):
        pyr.is_ancestor(0, 16)


@pytest.mark.parametrize("pyr", _random_pyramids(12), ids=lambda p: f"{p.num_frames}-{p.windows}")
def test_ancestry_is_a_strict_order_matching_spans(pyr):
    anc = pyr.ancestry()
    ne = pyr.num_events
    assert not anc.diagonal().any()
    assert not (anc & anc.T).any()
    assert not ((anc.astype(int) @ anc.astype(int) > 0) & ~anc).any()  # transitive
    assert not anc[ne:].any()  # frames are leaves
    spans = pyr.event_spans + tuple((f, f + 1) for f in range(pyr.num_frames))
    levels = pyr.event_levels + (0,) * pyr.num_frames
    # a is above b iff a is on a higher level and b's frame span lies inside a's
    contains = np.array(
        [
            [la > lb and sa[0] <= sb[0] and sb[1] <= sa[1] for sb, lb in zip(spans, levels)]
            for sa, la in zip(spans, levels)
        ]
    )
    np.testing.assert_array_equal(anc, contains)
    rng = random.Random(1)
    pairs = [(rng.randrange(pyr.num_nodes), rng.randrange(pyr.num_nodes)) for _ in range(200)]
    assert [pyr.is_ancestor(a, b) for a, b in pairs] == [bool(anc[a, b]) for a, b in pairs]


def test_describe_names_levels_windows_and_spans():
    text = Pyramid.from_overlaps(8, [0, 1, 1]).describe()
    lines = text.splitlines()
    assert lines[0] == "pyramid: 8 frames, 3 levels, 8 events"
    assert lines[1].startswith("  level 3: 1 event, window 3 stride 1 over level 2")
    assert "[0,4) [2,6) [4,8)" in lines[2]
    assert lines[-1] == "  level 0: 8 frames"


def test_non_dividing_windows_name_the_level_and_numbers():
    with pytest.raises(ConfigError, match=r"level 2: .*\(16 - 3\) / 2 \+ 1 is not an integer"):
        Pyramid.from_windows(32, [(2, 2), (3, 2)])


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ([(5, 1)], "level 1: window c=5 is wider than the 4 nodes of level 0"),
        ([(2, 2), (0, 1)], "level 2: window c=0 and stride o=1 must both be >= 1"),
        ([(2, 0)], "level 1: window c=2 and stride o=0"),
        ([(2, 2, 1)], r"level 1: window must be a pair \[c, o\]"),
        ([], "at least one level"),
    ],
)
def test_bad_windows(windows, message):
    with pytest.raises(ConfigError, match=message):
        Pyramid.from_windows(4, windows)


@pytest.mark.parametrize(
    ("num_frames", "overlaps", "message"),
    [
        (24, [0], "power-of-two number of frames, got 24"),
        (8, [0, 1, 1, 1], "4 overlap flags given, but 8 = 2\\^3 frames allow at most 3 levels"),
        (8, [0, 2], "overlap flags must be 0 or 1, got 2"),
        (8, [], "at least one overlap flag"),
    ],
)
def test_bad_overlaps(num_frames, overlaps, message):
    with pytest.raises(ConfigError, match=message):
        Pyramid.from_overlaps(num_frames, overlaps)


def test_build_pyramid_reads_flags_or_windows_from_one_value():
    assert build_pyramid(8, [[2, 2]]) == build_pyramid(8, [0]) == Pyramid.from_overlaps(8, [0])
    assert build_pyramid(8, [[2, 1]]).counts == (8, 7)  # a window list is never read as flags
    with pytest.raises(ConfigError, match="at least one overlap flag"):
        build_pyramid(8, [])


def test_inconsistent_counts_and_bad_levels_are_rejected():
    with pytest.raises(ValueError, match="do not follow from the windows"):
        Pyramid(8, ((2, 2),), (8, 3))
    pyr = Pyramid.from_overlaps(8, [0, 1])
    with pytest.raises(ValueError, match="level 3 is outside 1..2"):
        pyr.level_slice(3)
    with pytest.raises(ValueError, match="upper > lower"):
        pyr.composed(1, 1)
