"""ProPy's learnable prompts: event prompts, deep frame prompts, text prompt projections.

Event and frame prompts follow the reference's VPT-style init: uniform in
[-v, v] with v = sqrt(6 / (3 * patch^2 + width)), the Xavier bound of the
patch embedding, so prompts start at the scale of patch tokens. Text prompts
have no parameters of their own: they are linear maps of the frame prompts, so
the two towers share one set of prompt tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def prompt_init_bound(patch_size: int, width: int) -> float:
    """v = sqrt(6 / (3 * patch^2 + width)); about 0.0395 for ViT-B/32 (patch 32, width 768)."""
    return math.sqrt(6.0 / (3 * patch_size * patch_size + width))


class EventPrompts(nn.Module):
    """Ne tokens, one per pyramid event, in event order; shared by every video."""

    def __init__(self, num_events: int, width: int, patch_size: int):
        super().__init__()
        bound = prompt_init_bound(patch_size, width)
        self.prompts = nn.Parameter(torch.empty(num_events, width).uniform_(-bound, bound))

    def forward(self, batch: int) -> torch.Tensor:
        """[batch, Ne, width] (an expanded view, no copy)."""
        return self.prompts.unsqueeze(0).expand(batch, -1, -1)


class FramePrompts(nn.Module):
    """Deep prompts: Nvp fresh tokens for each of the first `layers` vision blocks.

    They are keys/values for the event queries only; each level-1 event gets
    its own copy (see `per_level1_event`), so a level-k event reads the copies
    of the level-1 events below it.
    """

    def __init__(self, layers: int, num_prompts: int, width: int, patch_size: int):
        super().__init__()
        bound = prompt_init_bound(patch_size, width)
        self.prompts = nn.Parameter(torch.empty(layers, num_prompts, width).uniform_(-bound, bound))

    @property
    def num_layers(self) -> int:
        return self.prompts.shape[0]


def per_level1_event(per_prompt: torch.Tensor, num_level1: int) -> torch.Tensor:
    """[Nvp, C] -> [num_level1 * Nvp, C]: copy p of level-1 event e at row e * Nvp + p (masks.py order).

    Copies are identical, so anything computed per token (layer norm, key and
    value projections) is computed on the Nvp prompts first and replicated after.
    """
    return per_prompt.repeat(num_level1, 1)


class TextPrompts(nn.Module):
    """Per-layer text prompts projected from the frame prompts (vision width -> text width).

    One projection shared by all layers, as in the reference. ``prefix`` tokens
    are inserted after [SOS]; ``postfix`` tokens, appended after the padded
    text, are inert under the causal mask (nothing attends to them) and exist
    only as a switch that reproduces the reference's parameter set.
    """

    def __init__(self, vision_width: int, text_width: int, prefix: bool, postfix: bool):
        super().__init__()
        self.prefix = nn.Linear(vision_width, text_width) if prefix else None
        self.postfix = nn.Linear(vision_width, text_width) if postfix else None

    def forward(self, frame_prompts: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """frame prompts [layers, Nvp, Wv] -> (prefix, postfix), each [layers, Nvp, Wt] or None."""
        return (
            self.prefix(frame_prompts) if self.prefix is not None else None,
            self.postfix(frame_prompts) if self.postfix is not None else None,
        )
