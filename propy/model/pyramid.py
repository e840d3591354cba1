"""The temporal prompt pyramid: levels, event spans, ancestry and VCMR proposals.

Level 0 is the Nf frames; level k+1 slides a window of c_k level-k nodes with
stride o_k, so n_{k+1} = (n_k - c_k) / o_k + 1. Every event is one node of a
level >= 1. Event order (prompt order, embedding order, proposal order) is top
level first, then left to right within a level, as in the paper's reference.
Node ids: events 0..Ne-1 in event order, then frames Ne..Ne+Nf-1.

Pure Python + numpy (no torch) so configs can be validated without a model.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from propy.errors import ConfigError

Window = tuple[int, int]


def _level_counts(num_frames: int, windows: tuple[Window, ...]) -> tuple[int, ...]:
    """(n_0, ..., n_K); raises ConfigError naming the first level that does not fit."""
    if num_frames < 1:
        raise ConfigError(f"pyramid: num_frames must be at least 1, got {num_frames}")
    if not windows:
        raise ConfigError("pyramid: at least one level of events is needed, got no windows")
    counts = [num_frames]
    for k, (c, o) in enumerate(windows):
        n, level = counts[-1], k + 1
        if c < 1 or o < 1:
            raise ConfigError(f"pyramid level {level}: window c={c} and stride o={o} must both be >= 1")
        if c > n:
            raise ConfigError(f"pyramid level {level}: window c={c} is wider than the {n} nodes of level {k}")
        if (n - c) % o:
            raise ConfigError(
                f"pyramid level {level}: (n - c) / o + 1 = ({n} - {c}) / {o} + 1 is not an "
                f"integer (window c={c}, stride o={o} over the {n} nodes of level {k})"
            )
        counts.append((n - c) // o + 1)
    return tuple(counts)


@dataclass(frozen=True)
class Pyramid:
    """A validated pyramid; build it with `from_windows`, `from_overlaps` or `build_pyramid`."""

    num_frames: int
    windows: tuple[Window, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.counts != _level_counts(self.num_frames, self.windows):
            raise ValueError(f"counts {self.counts} do not follow from the windows {self.windows}")

    @classmethod
    def from_windows(cls, num_frames: int, windows: Sequence[Sequence[int]]) -> Pyramid:
        """Pyramid from [(c_0, o_0), ..., (c_{K-1}, o_{K-1})], the paper's `H` form."""
        for k, pair in enumerate(windows):
            if len(pair) != 2:
                raise ConfigError(f"pyramid level {k + 1}: window must be a pair [c, o], got {list(pair)!r}")
        windows_t = tuple((int(c), int(o)) for c, o in windows)
        return cls(num_frames, windows_t, _level_counts(num_frames, windows_t))

    @classmethod
    def from_overlaps(cls, num_frames: int, overlaps: Sequence[int]) -> Pyramid:
        """Pyramid from per-level overlap flags for Nf = 2^p frames.

        Level i has segments of 2^i frames with stride 2^i (flag 0) or 2^(i-1)
        (flag 1); level p spans the whole video, so it has one event whatever
        its flag. The result is converted to the equivalent windows form.
        """
        nf = num_frames
        if nf < 1 or nf & (nf - 1):
            raise ConfigError(f"pyramid: overlaps need a power-of-two number of frames, got {nf}")
        p = nf.bit_length() - 1
        flags = list(overlaps)
        if not flags:
            raise ConfigError("pyramid: at least one overlap flag is needed, got none")
        if len(flags) > p:
            raise ConfigError(
                f"pyramid: {len(flags)} overlap flags given, but {nf} = 2^{p} frames allow at most {p} levels"
            )
        bad = [f for f in flags if f not in (0, 1)]
        if bad:
            raise ConfigError(f"pyramid: overlap flags must be 0 or 1, got {bad[0]} in {flags}")
        windows = []
        prev_len, prev_stride = 1, 1  # level 0: single frames, stride 1
        for i, flag in enumerate(flags, start=1):
            seg_len = 2**i
            stride = seg_len >> flag
            c = (seg_len - prev_len) // prev_stride + 1
            o = 1 if seg_len == nf else stride // prev_stride
            windows.append((c, o))
            prev_len, prev_stride = seg_len, stride
        return cls.from_windows(nf, windows)

    @property
    def num_levels(self) -> int:
        """K, the number of event levels above the frames."""
        return len(self.windows)

    @property
    def num_events(self) -> int:
        """Ne = n_1 + ... + n_K."""
        return sum(self.counts[1:])

    @property
    def num_nodes(self) -> int:
        """Ne + Nf: events then frames."""
        return self.num_events + self.num_frames

    @property
    def level_counts_top_first(self) -> tuple[int, ...]:
        """(n_K, ..., n_1), the block sizes of event order."""
        return self.counts[:0:-1]

    def _check_level(self, level: int, lowest: int) -> None:
        if not lowest <= level <= self.num_levels:
            raise ValueError(f"level {level} is outside {lowest}..{self.num_levels}")

    def composed(self, upper: int, lower: int) -> Window:
        """(window, stride) of level-`upper` nodes over level-`lower` nodes.

        Node i of `upper` covers lower nodes [i*s, i*s + w): stepping down one
        level with (c, o) maps a window w to (w - 1) * o + c and a stride s to s * o.
        """
        self._check_level(upper, 1)
        if not 0 <= lower < upper:
            raise ValueError(f"need upper > lower >= 0, got upper={upper}, lower={lower}")
        width, stride = 1, 1
        for c, o in reversed(self.windows[lower:upper]):
            width, stride = (width - 1) * o + c, stride * o
        return width, stride

    def level_slice(self, level: int) -> slice:
        """The event ids of one level (1..K), in event order."""
        self._check_level(level, 1)
        start = sum(self.counts[level + 1 :])
        return slice(start, start + self.counts[level])

    @property
    def event_levels(self) -> tuple[int, ...]:
        """Level of each event, event order (top first)."""
        return tuple(k for k in range(self.num_levels, 0, -1) for _ in range(self.counts[k]))

    @property
    def event_spans(self) -> tuple[tuple[int, int], ...]:
        """Frame span [start, end) of each event, event order."""
        spans: list[tuple[int, int]] = []
        for k in range(self.num_levels, 0, -1):
            width, stride = self.composed(k, 0)
            spans.extend((i * stride, i * stride + width) for i in range(self.counts[k]))
        return tuple(spans)

    @property
    def level1_events(self) -> tuple[int, ...]:
        """Event ids of level 1, left to right: the order of the frame-prompt copies."""
        return tuple(range(self.num_events)[self.level_slice(1)])

    def _node_level_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Per node id: its level (frames 0) and its index within that level."""
        levels = np.array(self.event_levels + (0,) * self.num_frames, dtype=np.int64)
        sizes = self.level_counts_top_first + (self.num_frames,)
        index = np.concatenate([np.arange(n) for n in sizes])
        return levels, index

    def ancestry(self) -> np.ndarray:
        """bool [num_nodes, num_nodes]: A[a, b] iff a is a strict ancestor of b."""
        size = self.num_levels + 1
        width = np.zeros((size, size), dtype=np.int64)  # 0 where upper <= lower: nothing covered
        stride = np.ones((size, size), dtype=np.int64)
        for upper in range(1, size):
            for lower in range(upper):
                width[upper, lower], stride[upper, lower] = self.composed(upper, lower)
        levels, index = self._node_level_index()
        w = width[levels[:, None], levels[None, :]]
        start = index[:, None] * stride[levels[:, None], levels[None, :]]
        return (index[None, :] >= start) & (index[None, :] < start + w)

    def is_ancestor(self, a: int, b: int) -> bool:
        """Whether node a is a strict ancestor of node b (node ids as in `ancestry`)."""
        for node in (a, b):
            if not 0 <= node < self.num_nodes:
                raise ValueError(f"node {node} is outside 0..{self.num_nodes - 1}")
        levels, index = self._node_level_index()
        if levels[a] <= levels[b]:
            return False
        width, stride = self.composed(int(levels[a]), int(levels[b]))
        return bool(index[a] * stride <= index[b] < index[a] * stride + width)

    def proposals(self) -> np.ndarray:
        """float64 [Ne, 2]: event spans / Nf, event order (weakly-supervised VCMR proposals). Frame i
        stands for the segment [i, i + 1) / Nf of the whole video (``propy.data.video.segment_bounds``),
        so these times the cached video's duration are the seconds an event's frames cover."""
        return np.array(self.event_spans, dtype=np.float64).reshape(-1, 2) / self.num_frames

    def describe(self) -> str:
        """Multi-line summary for `propy model-info`: one line per level, top first."""
        lines = [f"pyramid: {self.num_frames} frames, {self.num_levels} levels, {self.num_events} events"]
        spans = self.event_spans
        for k in range(self.num_levels, 0, -1):
            c, o = self.windows[k - 1]
            width, stride = self.composed(k, 0)
            n = self.counts[k]
            level_spans = " ".join(f"[{s},{e})" for s, e in spans[self.level_slice(k)])
            lines.append(
                f"  level {k}: {n} event{'s' if n != 1 else ''}, window {c} stride {o} over "
                f"level {k - 1}, {width} frames stride {stride}: {level_spans}"
            )
        lines.append(f"  level 0: {self.num_frames} frames")
        return "\n".join(lines)


def build_pyramid(num_frames: int, spec: Sequence[int] | Sequence[Sequence[int]]) -> Pyramid:
    """Pyramid from `model.pyramid` in params.yaml: overlap flags ``[0, 1, 1]`` when every
    entry is a number, else windows ``[[c, o], ...]``."""
    if all(isinstance(x, (int, np.integer)) for x in spec):
        return Pyramid.from_overlaps(num_frames, typing.cast(Sequence[int], spec))
    return Pyramid.from_windows(num_frames, typing.cast(Sequence[Sequence[int]], spec))
