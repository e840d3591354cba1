import math

import pytest
import torch
from conftest import repo_block
from torch import nn

from propy.config import TrainConfig
from propy.train.optim import make_optimizer, make_scheduler


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.prompts = nn.Parameter(torch.zeros(4, 8))
        self.proj = nn.Linear(8, 8)
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_decay_on_every_trainable_tensor_except_biases():
    model = Tiny()
    cfg = repo_block(TrainConfig, "train", lr=1e-3, weight_decay=0.2, betas=[0.9, 0.98], eps=1e-6)
    opt = make_optimizer(model, cfg)
    decayed, plain = opt.param_groups
    assert {id(p) for p in decayed["params"]} == {id(model.prompts), id(model.proj.weight)}
    assert [id(p) for p in plain["params"]] == [id(model.proj.bias)]
    assert decayed["weight_decay"] == 0.2 and plain["weight_decay"] == 0.0
    assert decayed["betas"] == (0.9, 0.98) and decayed["eps"] == 1e-6 and decayed["lr"] == 1e-3


def test_no_trainable_parameters_is_an_error():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(model, repo_block(TrainConfig, "train"))


def lr_trace(total: int, warmup: float, base: float = 1.0) -> list[float]:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    sched = make_scheduler(opt, total, warmup)
    trace = []
    for _ in range(total + 1):
        trace.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return trace


def test_warmup_then_cosine_to_zero():
    lrs = lr_trace(total=100, warmup=0.1, base=2.0)
    assert lrs[0] == pytest.approx(2.0 / 10)  # first warm-up step is not wasted
    assert lrs[4] == pytest.approx(2.0 * 5 / 10)
    assert lrs[9] == pytest.approx(2.0)  # end of warm-up
    assert lrs[10] == pytest.approx(2.0)  # cosine starts at the peak
    assert lrs[55] == pytest.approx(1.0)  # half way through the cosine: half the peak
    assert lrs[30] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 20 / 90)))
    assert lrs[100] == pytest.approx(0.0, abs=1e-12)  # after the last update
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone decay


def test_no_warmup_starts_at_peak():
    lrs = lr_trace(total=4, warmup=0.0)
    cosine = [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(5)]
    assert lrs == pytest.approx(cosine) and cosine[2] == pytest.approx(0.5) and cosine[4] == pytest.approx(0.0)
