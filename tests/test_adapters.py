"""Temporal adapter: zero at init, the reference's Conv3d (k,1,1) map, temporal locality."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from propy.model.adapters import TemporalAdapter


def _randomised(width=6, hidden=4, kernel=3) -> TemporalAdapter:
    torch.manual_seed(0)
    adapter = TemporalAdapter(width, hidden, kernel)
    for p in adapter.parameters():
        nn.init.normal_(p)
    return adapter


def test_zero_at_init():
    adapter = TemporalAdapter(8, 4, 5)
    assert torch.equal(adapter(torch.randn(2, 6, 5, 8)), torch.zeros(2, 6, 5, 8))


def test_equals_the_depthwise_conv3d_formulation():
    """Linear -> Conv3d(k,1,1) depthwise over [time, H, W] -> Linear, as in the reference."""
    adapter = _randomised(width=6, hidden=4, kernel=3)
    batch, frames, grid = 2, 5, 3
    x = torch.randn(batch, frames, grid * grid, 6)
    conv3d = nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0), groups=4)
    with torch.no_grad():
        conv3d.weight.copy_(adapter.conv.weight.view(4, 1, 3, 1, 1))  # [channels, k] -> Conv3d layout
        conv3d.bias.copy_(adapter.conv.bias)
    h = adapter.down(x).view(batch, frames, grid, grid, 4).permute(0, 4, 1, 2, 3)
    h = conv3d(h).permute(0, 2, 3, 4, 1).reshape(batch, frames, grid * grid, 4)
    assert torch.allclose(adapter(x), adapter.up(h), atol=1e-5)


def test_mixes_time_within_the_kernel_and_never_patches():
    adapter = _randomised(kernel=3)
    x = torch.randn(1, 6, 4, 6)
    base = adapter(x)
    far = x.clone()
    far[0, 5] += 1.0  # frame 5: outside frame 2's kernel (frames 1..3)
    assert torch.equal(adapter(far)[0, 2], base[0, 2])
    near = x.clone()
    near[0, 3, 1] += 1.0  # frame 3, patch 1: inside frame 2's kernel
    out = adapter(near)
    assert not torch.equal(out[0, 2, 1], base[0, 2, 1])
    assert torch.equal(out[0, 2, 0], base[0, 2, 0])  # other patches untouched


def test_first_gradient_reaches_the_conv_but_not_the_input_projection():
    """Why the model test takes one optimizer step before checking adapter gradients."""
    torch.manual_seed(0)
    adapter = TemporalAdapter(6, 4, 3)
    (adapter(torch.randn(2, 5, 3, 6)) * torch.randn(2, 5, 3, 6)).sum().backward()
    for name in ("conv.weight", "conv.bias", "up.bias"):
        assert adapter.get_parameter(name).grad.abs().sum() > 0, name
    for name in ("up.weight", "down.weight", "down.bias"):  # behind the zero conv
        assert adapter.get_parameter(name).grad.abs().sum() == 0, name


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        TemporalAdapter(8, 4, 4)
