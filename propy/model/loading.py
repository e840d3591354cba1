"""One way to get a variant's model: build it on the frozen CLIP and load its trained tensors.

Evaluation, search, bench and ``train --init-from`` all go through here, so a checkpoint is always
checked against the variant it is loaded for (``propy.model.checkpoint.load_trained``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from propy.config import TRAINED_KINDS, Params
from propy.errors import DataError
from propy.model.backbone import Backbone
from propy.model.checkpoint import load_trained
from propy.model.network import VideoModel, build_model


def load_weights(model: VideoModel, params: Params, checkpoint: Path | None) -> int | None:
    """Load ``checkpoint``'s trained tensors into ``model`` (checked against ``params``); the epoch they
    come from (None when the file does not say)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        raise DataError(
            f"{checkpoint}: no trained weights for variant {params.variant!r} "
            f"(run `python -m propy train --variant {params.variant}` first)"
        )
    state = load_trained(checkpoint, params)
    model.load_trainable_state_dict(state["trainable"])
    return state.get("epoch")


def load_model(
    params: Params, backbone: Backbone, checkpoint: Path | None, device: torch.device
) -> tuple[VideoModel, int | None]:
    """The variant's model and the epoch of its trained weights (None for the zero-shot baselines)."""
    model = build_model(params.model, backbone.model)
    epoch = load_weights(model, params, checkpoint) if params.model.kind in TRAINED_KINDS else None
    return model.to(device).eval(), epoch
