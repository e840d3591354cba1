"""Hold out a seeded set of training videos as the validation split.

TVR's release has no validation split for PRVR (its val file is the test split), yet training
picks its best epoch on ``val.jsonl``. Holding out whole videos (with all their queries) keeps
the test split out of model selection. The held-out videos are a function of the seed and the
set of video names only (names are sorted before shuffling), so the split does not depend on
the order of the file and the same command always gives the same files.
"""

from __future__ import annotations

import numpy as np


def split_videos(names: list[str], count: int, seed: int) -> set[str]:
    """``count`` of ``names`` drawn without replacement by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(names))
    ordered = sorted(names)
    return {ordered[i] for i in order[:count]}
