"""Symmetric InfoNCE over a query x video logit matrix (docs/method.md, "Training").

A batch holds B videos with all their training queries, so a video has several
positives: text-to-video treats each query's own video as its one positive;
video-to-text treats all the video's queries together as the positive
(a logsumexp over them), so a video is not penalised for having many queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_infonce(logits: torch.Tensor, query_video: torch.Tensor) -> torch.Tensor:
    """Mean of the text-to-video and video-to-text losses.

    ``logits`` [Nq, Nv] are already scaled by the logit scale; ``query_video``
    [Nq] is the column index of each query's own video. Every video needs at
    least one query, else its video-to-text positive set is empty.
    """
    if logits.ndim != 2 or query_video.shape != (logits.shape[0],):
        raise ValueError(
            f"expected logits [Nq, Nv] and query_video [Nq], got {tuple(logits.shape)} and {tuple(query_video.shape)}"
        )
    num_videos = logits.shape[1]
    own = query_video[:, None] == torch.arange(num_videos, device=logits.device)[None, :]  # [Nq, Nv]
    if not bool(own.any(dim=0).all()):
        raise ValueError("every video needs at least one query in the batch")
    logits = logits.float()  # logsumexp in float32 under autocast
    t2v = F.cross_entropy(logits, query_video)
    positives = torch.logsumexp(logits.masked_fill(~own, float("-inf")), dim=0)  # [Nv]
    v2t = (torch.logsumexp(logits, dim=0) - positives).mean()
    return (t2v + v2t) / 2
