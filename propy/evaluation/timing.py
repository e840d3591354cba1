"""One way to time code: device-synchronised wall and process CPU seconds, the median of alternating repeats.

Every speed figure (``propy bench``, ``propy model-info``, the cost page) comes from here, so they are
one statistic: the median of ``repeats`` calls after one warm-up call, with the range of the repeats
as the spread. Functions compared with each other are called alternately, so a burst of other work
on the machine slows both rather than one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Seconds of one call: medians over the repeats, and the fastest and slowest wall time."""

    wall: float
    cpu: float
    wall_min: float
    wall_max: float
    repeats: int


def _sync(device) -> None:
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device=None) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call of ``fn``, device work included."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_alternating(fns: dict[str, Callable[[], object]], repeats: int, device=None) -> dict[str, Timing]:
    """{name: Timing} of each function: one warm-up call each, then ``repeats`` rounds calling each once."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for fn in fns.values():
        fn()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            runs[name].append(measure(fn, device))
    out = {}
    for name, pairs in runs.items():
        walls = [w for w, _ in pairs]
        out[name] = Timing(
            wall=statistics.median(walls),
            cpu=statistics.median(c for _, c in pairs),
            wall_min=min(walls),
            wall_max=max(walls),
            repeats=repeats,
        )
    return out
