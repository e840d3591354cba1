"""The --html page's layout helpers: timeline rows never stack overlapping events, strips stay inside a moment."""

from __future__ import annotations

import numpy as np

from propy.search.engine import Moment
from propy.search.html import strip_indices, timeline_rows


def test_timeline_rows_keep_overlapping_events_apart():
    spans = np.array([[0, 8], [0, 4], [2, 6], [4, 8], [0, 2], [2, 4], [4, 6], [6, 8]], float)
    rows = timeline_rows(spans)
    assert rows.tolist() == [0, 1, 2, 1, 3, 3, 3, 3]  # half-overlapping level in two rows, finest level last
    for a in range(len(spans)):
        for b in range(a + 1, len(spans)):
            if rows[a] == rows[b]:
                assert spans[a, 1] <= spans[b, 0] or spans[b, 1] <= spans[a, 0]


def test_strip_frames_lie_inside_the_moment():
    frames, duration = 40, 10.0  # frame j shows (j + 0.5) * 0.25 s
    index = strip_indices(Moment(0, 2.0, 4.0, 0.5), duration, 6, frames)
    times = (index + 0.5) * duration / frames
    assert ((times >= 2.0 - 0.25) & (times <= 4.0 + 0.25)).all() and np.all(np.diff(index) >= 0)
    assert strip_indices(Moment(0, 9.9, 10.0, 0.5), duration, 3, frames).tolist() == [39, 39, 39]
