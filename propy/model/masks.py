"""Which keys each event prompt may attend to, for every interaction variant.

Events are the only queries that see the pyramid: frames keep CLIP's own
per-frame attention. An event always sees the frames of its span (the CLIP
tokens it summarises) and the frame-prompt copies of the level-1 events it
covers; the variant only changes which other events it sees (the ablation of
Ancestor-Descendant Interaction, ADI).
"""

from __future__ import annotations

import numpy as np

from propy.errors import ConfigError
from propy.model.pyramid import Pyramid

INTERACTIONS = ("full", "descendants", "ancestors", "none", "dense")  # `model.interaction` (config.py)


def _event_block(below: np.ndarray, variant: str) -> np.ndarray:
    """bool [Ne, Ne]: event i may attend to event j under `variant`.

    `below[i, j]` says event j is a strict descendant of event i.
    """
    if variant not in INTERACTIONS:
        raise ConfigError(f"unknown interaction variant {variant!r}; expected one of {', '.join(INTERACTIONS)}")
    ne = below.shape[0]
    own = np.eye(ne, dtype=bool)
    blocks = {
        "full": own | below | below.T,
        "descendants": own | below,
        "ancestors": own | below.T,
        "none": own,
        "dense": np.ones((ne, ne), dtype=bool),
    }
    return blocks[variant]


def event_node_mask(pyramid: Pyramid, variant: str) -> np.ndarray:
    """bool [Ne, Ne + Nf]: event i may attend to node j (events in event order, then frames)."""
    ne = pyramid.num_events
    ancestry = pyramid.ancestry()[:ne]
    return np.concatenate([_event_block(ancestry[:, :ne], variant), ancestry[:, ne:]], axis=1)


def frame_prompt_mask(pyramid: Pyramid) -> np.ndarray:
    """bool [Ne, n1]: event i sees the frame prompts of level-1 event e iff e is i or below i.

    Independent of the variant: frame prompts stand in for frames, not for events.
    """
    ne = pyramid.num_events
    self_or_below = np.eye(ne, dtype=bool) | pyramid.ancestry()[:ne, :ne]
    return self_or_below[:, list(pyramid.level1_events)]


def event_attention_mask(pyramid: Pyramid, variant: str, tokens_per_frame: int, frame_prompts: int) -> np.ndarray:
    """float32 additive mask [Ne, Ne + frame_prompts * n1 + Nf * tokens_per_frame].

    0.0 = allowed, -inf = blocked. Columns: events; frame-prompt copies,
    level-1-event-major (copy p of the e-th level-1 event at Ne + e * frame_prompts + p);
    frame tokens, frame-major (token t of frame f at ... + f * tokens_per_frame + t).
    """
    if tokens_per_frame < 1:
        raise ConfigError(f"tokens_per_frame must be at least 1, got {tokens_per_frame}")
    if frame_prompts < 0:
        raise ConfigError(f"frame_prompts must be at least 0, got {frame_prompts}")
    nodes = event_node_mask(pyramid, variant)
    ne = pyramid.num_events
    allowed = np.concatenate(
        [
            nodes[:, :ne],
            np.repeat(frame_prompt_mask(pyramid), frame_prompts, axis=1),
            np.repeat(nodes[:, ne:], tokens_per_frame, axis=1),
        ],
        axis=1,
    )
    return np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
