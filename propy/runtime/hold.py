"""A pause point a test can hold a long job at, so it interrupts the job at a known step, not in a race.

``PROPY_HOLD=<step>:<n>:<file>`` makes ``hold(step, n)`` wait until ``<file>`` exists. Without the
variable (every real run) ``hold`` returns at once. The extraction holds after each video it wrote,
so a test can send Ctrl-C while exactly ``n`` videos are cached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

VARIABLE = "PROPY_HOLD"


def hold(step: str, count: int) -> None:
    """Wait while ``PROPY_HOLD`` names this step and count and its release file does not exist yet."""
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    name, at, release = spec.split(":", 2)
    if name != step or int(at) != count:
        return
    while not Path(release).exists():
        time.sleep(0.05)
