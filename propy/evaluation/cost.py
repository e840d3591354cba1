"""What a variant costs: parameter counts per component, and video-encode time against plain CLIP.

Used by ``propy model-info``, ``propy bench`` and the cost page. CLIP can be built with random weights
(counts and timings do not depend on them), so this runs before any checkpoint exists.
"""

from __future__ import annotations

from collections import defaultdict

from propy.evaluation.timing import time_alternating


def parameter_counts(model) -> dict[str, tuple[int, bool]]:
    """{component: (parameters, trainable)}: the trained modules, and CLIP's two frozen towers."""
    counts: dict[str, list] = defaultdict(lambda: [0, False])
    for name, p in model.named_parameters():
        if name.startswith("clip.visual."):
            key = "clip vision tower"
        elif name.startswith("clip."):
            key = "clip text tower (+ logit scale)"
        else:
            key = name.split(".")[0]
        counts[key][0] += p.numel()
        counts[key][1] |= p.requires_grad
    return {k: (n, trainable) for k, (n, trainable) in counts.items()}


def encode_timings(model, frames, repeats: int, device=None) -> dict:
    """{"propy"|"clip": Timing} of the variant's ``encode_video`` and CLIP's ``encode_image`` of the same
    frames, timed alternately in one run (``propy.evaluation.timing``), so their ratio holds on a busy
    machine. CPU time is kept too: on a shared machine wall time mostly measures the other jobs."""
    import torch

    flat = frames.flatten(0, 1)
    with torch.no_grad():
        return time_alternating(
            {"propy": lambda: model.encode_video(frames), "clip": lambda: model.clip.encode_image(flat)},
            repeats,
            device,
        )
