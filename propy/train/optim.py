"""AdamW over the trainable tensors and the warm-up + cosine learning-rate schedule.

As in the reference, weight decay applies to every trainable tensor except
biases: the prompts are decayed too, which keeps them near the small scale of
their initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from propy.config import TrainConfig


def is_bias(name: str, param: nn.Parameter) -> bool:
    return name.endswith("bias")


def param_groups(
    model: nn.Module,
    weight_decay: float,
    exempt: Callable[[str, nn.Parameter], bool] = is_bias,
) -> list[dict]:
    """Two AdamW groups over ``requires_grad`` parameters: decayed, and ``exempt`` ones (no decay)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if exempt(name, param) else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR factor for the 0-based ``step``: linear up to 1 at the last warm-up step, then a cosine to 0.

    The first step already gets ``1 / warmup_steps`` (not 0), so no step is wasted;
    the factor reaches exactly 0 at ``step == total_steps`` (after the last update).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration; ``warmup`` is the fraction of ``total_steps`` spent warming up."""
    if total_steps < 1:
        raise ValueError("the schedule needs at least one step")
    warmup_steps = int(round(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))
