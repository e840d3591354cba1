"""Prompt modules: the reference's init bound, shapes, copy order of frame prompts, text projections."""

from __future__ import annotations

import math

import pytest
import torch

from propy.model.prompts import (
    EventPrompts,
    FramePrompts,
    TextPrompts,
    per_level1_event,
    prompt_init_bound,
)


def test_init_bound_matches_the_paper_value():
    # ViT-B/32: sqrt(6 / (3 * 32^2 + 768)) = sqrt(6 / 3840) = 0.03953
    assert prompt_init_bound(32, 768) == pytest.approx(math.sqrt(6 / 3840))
    assert prompt_init_bound(32, 768) == pytest.approx(0.0395, abs=1e-4)


def test_event_prompts_are_uniform_within_the_bound_and_shared_by_videos():
    torch.manual_seed(0)
    prompts = EventPrompts(num_events=42, width=768, patch_size=32)
    bound = prompt_init_bound(32, 768)
    values = prompts.prompts.detach()
    assert values.shape == (42, 768)
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.9 * bound  # uniform over the whole range, not e.g. zeros
    batch = prompts(3)
    assert batch.shape == (3, 42, 768)
    assert batch.data_ptr() == prompts.prompts.data_ptr()  # a view: one set for every video


def test_frame_prompt_copies_are_level1_event_major():
    prompts = FramePrompts(layers=2, num_prompts=3, width=4, patch_size=8)
    assert prompts.num_layers == 2 and prompts.prompts.shape == (2, 3, 4)
    copies = per_level1_event(prompts.prompts[1], num_level1=5)
    assert copies.shape == (15, 4)
    for e in range(5):
        for p in range(3):
            assert torch.equal(copies[e * 3 + p], prompts.prompts[1, p])


def test_text_prompts_project_each_layer():
    torch.manual_seed(0)
    text = TextPrompts(vision_width=8, text_width=6, prefix=True, postfix=False)
    frame = torch.randn(3, 4, 8)
    prefix, postfix = text(frame)
    assert postfix is None and prefix.shape == (3, 4, 6)
    assert torch.allclose(prefix[2], frame[2] @ text.prefix.weight.T + text.prefix.bias)
    both = TextPrompts(8, 6, prefix=True, postfix=True)
    assert all(t.shape == (3, 4, 6) for t in both(frame))
    assert TextPrompts(8, 6, prefix=False, postfix=False)(frame) == (None, None)
