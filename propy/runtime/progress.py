"""Progress of a long loop: a tqdm bar on a terminal, plain periodic lines otherwise.

A bar is unreadable in a log file or a CI console (tqdm's ``disable=None`` hides it there), yet an
hour-long ``propy index`` must still say how far it got; so off a terminal, one line goes to stderr
every ``every`` seconds and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T],
    total: int,
    desc: str,
    unit: str = "video",
    every: float = 30.0,
    enabled: bool = True,
    stream: TextIO | None = None,
    status: Callable[[], str] | None = None,
) -> Iterator[T]:
    """Yield ``items``, reporting progress as the module docstring says (nothing when not ``enabled``);
    ``status()``, called after each item, adds e.g. the last loss to the bar and to each line."""
    stream = stream or sys.stderr
    if not enabled:
        yield from items
        return
    if stream.isatty():
        bar = tqdm(items, total=total, desc=desc, unit=unit, file=stream)
        for item in bar:
            yield item
            if status is not None:
                bar.set_postfix_str(status(), refresh=False)
        return
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every or done == total:
            last = now
            rate = done / max(now - started, 1e-9)
            left = (total - done) / rate if rate > 0 else float("inf")
            extra = f", {status()}" if status is not None else ""
            print(
                f"{desc}: {done}/{total} {unit}s ({100 * done / max(total, 1):.0f}%), {rate:.2f} {unit}s/s, "
                f"~{left:.0f} s left{extra}",
                file=stream,
                flush=True,
            )
