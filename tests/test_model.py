"""ProPy and the baselines on a tiny random CLIP: parity with open_clip, ADI locality, gradients."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import repo_block

from propy.config import ModelConfig
from propy.errors import ConfigError
from propy.model.backbone import create_clip
from propy.model.masks import event_attention_mask
from propy.model.network import MaxFrameCLIP, MeanPoolCLIP, ProPy, build_model, scores

TINY = "configs/propy-tiny.json"
NF = 8  # overlaps [0, 1, 1]: 4 + 3 + 1 = 8 events
EOS = 49407


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip(TINY)


def cfg(**changes) -> ModelConfig:
    base = repo_block(ModelConfig, "model", num_frames=NF, pyramid=[0, 1, 1], adapter_width=16, adapter_kernel=3)
    return dataclasses.replace(base, **changes)


def frames(batch=2, seed=1) -> torch.Tensor:
    return torch.randn(batch, NF, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def tokens(n=3, length=12, seed=2) -> torch.Tensor:
    out = torch.randint(1, 1000, (n, length), generator=torch.Generator().manual_seed(seed))
    out[:, 0] = 49406
    for i in range(n):  # EOS at a different place per query, zero padding after it
        out[i, 5 + i] = EOS
        out[i, 6 + i :] = 0
    return out


def randomise_adapters(model: ProPy) -> None:
    with torch.no_grad():
        for p in model.adapters.parameters():
            p.normal_(0, 0.1)


# --------------------------------------------------------------------------- parity with open_clip


def test_frame_cls_equals_encode_image(clip):
    model = build_model(cfg(), clip)  # prompts on (frames never see them), adapters at zero init
    video = frames()
    expected = clip.encode_image(video.flatten(0, 1)).view(2, NF, -1)
    assert torch.allclose(model.encode_frames(video), expected, atol=1e-5)
    bare = build_model(cfg(frame_prompts=0, text_prompts=False, adapters=False), clip)
    assert torch.allclose(bare.encode_frames(video), expected, atol=1e-5)


def test_text_without_prompts_equals_encode_text(clip):
    full = tokens(length=32)  # open_clip needs the whole context length
    expected = clip.encode_text(full)
    model = build_model(cfg(text_prompts=False), clip)
    assert torch.allclose(model.encode_text(full), expected, atol=1e-5)
    # shorter inputs: the same features as the zero-padded full context (causal mask)
    assert torch.allclose(model.encode_text(full[:, :12]), expected, atol=1e-5)
    prompted = build_model(cfg(), clip)
    assert not torch.allclose(prompted.encode_text(full), expected, atol=1e-3)


def test_too_long_text_is_a_config_error(clip):
    with pytest.raises(ConfigError, match="context length 32"):
        build_model(cfg(), clip).encode_text(tokens(length=40))


def _naive_events(model: ProPy, video: torch.Tensor) -> torch.Tensor:
    """One video at a time, one nn.MultiheadAttention call per block over the whole node sequence.

    Sequence = [events, frame-prompt copies, frame tokens]; frames attend within
    their own frame, prompt copies to themselves, events under the ADI mask.
    """
    visual, pyr = model.clip.visual, model.pyramid
    x = visual._embeds(video)  # [Nf, T, W]
    nf, t, w = x.shape
    events = model.event_prompts.prompts
    ne, n1, nvp = pyr.num_events, pyr.counts[1], model.frame_prompts.prompts.shape[1]
    allowed = np.zeros((ne + n1 * nvp + nf * t,) * 2, dtype=bool)
    allowed[:ne] = event_attention_mask(pyr, "full", t, nvp) == 0
    allowed[ne : ne + n1 * nvp, ne : ne + n1 * nvp] = np.eye(n1 * nvp, dtype=bool)
    for f in range(nf):
        lo = ne + n1 * nvp + f * t
        allowed[lo : lo + t, lo : lo + t] = True
    mask = torch.zeros(allowed.shape).masked_fill(torch.from_numpy(~allowed), float("-inf"))
    for i, block in enumerate(visual.transformer.resblocks):
        seq = torch.cat([events, model.frame_prompts.prompts[i].repeat(n1, 1), x.reshape(nf * t, w)])
        h = block.ln_1(seq)[None]
        out = block.attn(h, h, h, attn_mask=mask, need_weights=False)[0][0]
        frame_out = out[ne + n1 * nvp :].reshape(nf, t, w)
        if i < len(model.adapters):
            delta = model.adapters[i](frame_out[None, :, 1:])[0]
            frame_out = torch.cat([frame_out[:, :1], frame_out[:, 1:] + delta], 1)
        x = x + frame_out
        x = x + block.mlp(block.ln_2(x))
        events = events + out[:ne]
        events = events + block.mlp(block.ln_2(events))
    return visual.ln_post(events) @ visual.proj


def test_batched_masked_attention_equals_a_naive_per_video_reference(clip):
    torch.manual_seed(3)
    model = build_model(cfg(), clip)
    randomise_adapters(model)
    video = frames()
    with torch.no_grad():
        got = model.encode_video(video)
        for b in range(2):
            assert torch.allclose(got[b], _naive_events(model, video[b]), atol=1e-5)


# --------------------------------------------------------------------------- interaction


def test_events_see_only_their_frames_under_no_interaction(clip):
    model = build_model(cfg(interaction="none", adapters=False), clip)
    video = frames()
    with torch.no_grad():
        base = model.encode_video(video)
        for f in range(NF):
            changed = video.clone()
            changed[0, f] += 1.0
            out = model.encode_video(changed)
            assert torch.equal(out[1], base[1])  # the other video is untouched
            for e, (start, end) in enumerate(model.pyramid.event_spans):
                same = torch.equal(out[0, e], base[0, e])
                assert same != (start <= f < end), (f, e, start, end)


def test_trained_adapters_let_neighbouring_frames_in(clip):
    """The temporal conv (kernel 3) lets frame 2 reach the event of frames [0, 2)."""
    model = build_model(cfg(interaction="none"), clip)
    randomise_adapters(model)
    video = frames()
    changed = video.clone()
    changed[0, 2] += 1.0
    first = model.pyramid.level_slice(1).start  # level-1 event [0, 2)
    with torch.no_grad():
        assert not torch.equal(model.encode_video(changed)[0, first], model.encode_video(video)[0, first])


@pytest.mark.parametrize("interaction", ["full", "descendants", "ancestors", "dense"])
def test_interaction_variants_differ_from_none(clip, interaction):
    torch.manual_seed(4)
    model = build_model(cfg(interaction=interaction), clip)
    none = build_model(cfg(interaction="none"), clip)
    none.load_trainable_state_dict(model.trainable_state_dict())
    video = frames()
    with torch.no_grad():
        assert not torch.allclose(model.encode_video(video), none.encode_video(video), atol=1e-6)


# --------------------------------------------------------------------------- training

EXPECTED_TRAINABLE = {
    "event_prompts.prompts",
    "frame_prompts.prompts",
    "text_prompts.prefix.weight",
    "text_prompts.prefix.bias",
} | {f"adapters.{i}.{p}.{k}" for i in range(2) for p in ("down", "conv", "up") for k in ("weight", "bias")}


def test_only_new_parameters_require_grad(clip):
    model = build_model(cfg(), clip)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == EXPECTED_TRAINABLE
    assert set(model.trainable_state_dict()) == EXPECTED_TRAINABLE
    assert not any(p.requires_grad for p in clip.parameters())
    assert not model.logit_scale.requires_grad
    assert model.logit_scale.item() == pytest.approx(clip.logit_scale.exp().item())


def _loss(model) -> torch.Tensor:
    text = model.encode_text(tokens(n=2))
    logits, _ = scores(text, model.encode_video(frames()))
    return F.cross_entropy(model.logit_scale * logits, torch.arange(2))


def test_every_trainable_tensor_gets_a_gradient(clip):
    torch.manual_seed(5)
    model = build_model(cfg(), clip).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _loss(model).backward()
    zero = {n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0}
    # behind the zero-initialised conv: nothing reaches them on the first step
    assert zero == {f"adapters.{i}.{p}" for i in range(2) for p in ("down.weight", "down.bias", "up.weight")}
    optimizer.step()
    optimizer.zero_grad()
    _loss(model).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad.abs().sum() > 0, name
    assert not clip.training  # model.train() keeps the frozen CLIP in eval mode


def test_postfix_prompts_are_inert(clip):
    torch.manual_seed(6)
    with_postfix = build_model(cfg(postfix_prompts=True), clip)
    without = build_model(cfg(), clip)
    state = with_postfix.trainable_state_dict()
    without.load_trainable_state_dict({k: v for k, v in state.items() if ".postfix." not in k})
    text = tokens()
    out = with_postfix.encode_text(text)
    assert torch.allclose(out, without.encode_text(text), atol=1e-6)
    out.square().sum().backward()
    assert with_postfix.text_prompts.prefix.weight.grad.abs().sum() > 0
    assert torch.equal(with_postfix.text_prompts.postfix.weight.grad, torch.zeros(64, 64))
    assert torch.equal(with_postfix.text_prompts.postfix.bias.grad, torch.zeros(64))


def test_trainable_state_round_trip(clip):
    torch.manual_seed(7)
    model = build_model(cfg(), clip)
    randomise_adapters(model)
    other = build_model(cfg(), clip)
    other.load_trainable_state_dict(model.trainable_state_dict())
    with torch.no_grad():
        assert torch.equal(other.encode_video(frames()), model.encode_video(frames()))
        assert torch.equal(other.encode_text(tokens()), model.encode_text(tokens()))
    with pytest.raises(ConfigError, match="adapters.0.conv.weight"):
        build_model(cfg(adapters=False), clip).load_trainable_state_dict(model.trainable_state_dict())


# --------------------------------------------------------------------------- shapes and switches


@pytest.mark.parametrize(
    "changes, num_events, trainable",
    [
        ({}, 8, EXPECTED_TRAINABLE),
        ({"adapters": False}, 8, {n for n in EXPECTED_TRAINABLE if not n.startswith("adapters")}),
        (
            {"frame_prompts": 0, "text_prompts": False},
            8,
            {"event_prompts.prompts"} | {n for n in EXPECTED_TRAINABLE if n.startswith("adapters")},
        ),
        ({"text_prompts": False}, 8, {n for n in EXPECTED_TRAINABLE if not n.startswith("text")}),
        ({"single_event": True}, 1, EXPECTED_TRAINABLE),
        (
            {"prompt_layers": 1, "adapter_layers": 1},
            8,
            {n for n in EXPECTED_TRAINABLE if not n.startswith("adapters.1")},
        ),
    ],
    ids=["full", "no_adapters", "no_frame_prompts", "no_text_prompts", "single_event", "partial_layers"],
)
def test_component_switches(clip, changes, num_events, trainable):
    torch.manual_seed(8)
    model = build_model(cfg(**changes), clip)
    assert set(model.trainable_state_dict()) == trainable
    if "prompt_layers" in changes:
        assert model.frame_prompts.prompts.shape == (1, 4, 64)
    video = frames()
    events, text = model.encode_video(video), model.encode_text(tokens())
    assert events.shape == (2, num_events, 64) and events.dtype == torch.float32
    assert text.shape == (3, 64) and text.dtype == torch.float32
    assert model.proposals.shape == (num_events, 2)
    assert torch.allclose(model.proposals, torch.from_numpy(model.pyramid.proposals()).float())
    _loss(model).backward()  # every path is differentiable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_single_event_spans_the_video(clip):
    model = build_model(cfg(single_event=True), clip)
    assert model.proposals.tolist() == [[0.0, 1.0]]
    assert model.mask_with_prompts.shape[0] == 1


def test_bad_configs_are_config_errors(clip):
    with pytest.raises(ConfigError, match="level 1"):  # (8 - 3) / 2 + 1 is not an integer
        build_model(cfg(pyramid=[[3, 2]]), clip)
    with pytest.raises(ConfigError, match="prompt_layers"):
        build_model(cfg(prompt_layers=4), clip)
    for layers in (0, 3):  # the last of the 3 blocks has no adapter: its frame outputs reach no event
        with pytest.raises(ConfigError, match="adapter_layers"):
            build_model(cfg(adapter_layers=layers), clip)
    with pytest.raises(ConfigError, match="postfix"):
        build_model(cfg(frame_prompts=0, text_prompts=False, postfix_prompts=True), clip)
    with pytest.raises(ValueError, match=r"\[B, 8, 3, S, S\]"):
        build_model(cfg(), clip).encode_video(torch.zeros(1, 4, 3, 32, 32))


# --------------------------------------------------------------------------- baselines and scores


def test_baselines(clip):
    video = frames()
    per_frame = clip.encode_image(video.flatten(0, 1)).view(2, NF, -1)
    mean = build_model(cfg(kind="meanpool"), clip)
    maxf = build_model(cfg(kind="maxframe"), clip)
    assert isinstance(mean, MeanPoolCLIP) and isinstance(maxf, MaxFrameCLIP)
    assert torch.allclose(mean.encode_video(video), per_frame.mean(1, keepdim=True), atol=1e-6)
    assert torch.allclose(maxf.encode_video(video), per_frame, atol=1e-6)
    assert mean.proposals.tolist() == [[0.0, 1.0]]
    assert maxf.proposals.shape == (NF, 2) and maxf.proposals[3].tolist() == [3 / NF, 4 / NF]
    assert mean.trainable_state_dict() == {} and maxf.trainable_state_dict() == {}
    full = tokens(length=32)
    assert torch.allclose(maxf.encode_text(full), clip.encode_text(full), atol=1e-5)
    # the frozen scale with exp applied: a random-init open_clip starts at log(1 / 0.07)
    assert maxf.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_scores_max_cosine_hand_example():
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    events = torch.tensor([[[3.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [-1.0, 0.0]]])  # 2 videos x 2 events
    logits, per_event = scores(text, events)
    s = 2**-0.5
    assert torch.allclose(per_event, torch.tensor([[[1.0, 0.0], [s, -1.0]], [[0.0, 1.0], [s, 0.0]]]))
    assert torch.allclose(logits, torch.tensor([[1.0, s], [1.0, s]]))
    raw, _ = scores(text, events, normalize_events=False)  # queries still normalised
    assert torch.allclose(raw, torch.tensor([[3.0, 1.0], [1.0, 1.0]]))


# --------------------------------------------------------------------------- beyond the paper


def test_temporal_embedding_starts_as_propy_and_makes_events_order_aware(clip):
    torch.manual_seed(9)
    order_blind = cfg(single_event=True, adapters=False, frame_prompts=0, text_prompts=False)
    plain = build_model(order_blind, clip)
    model = build_model(dataclasses.replace(order_blind, temporal_embedding=True), clip)
    model.load_trainable_state_dict(
        {**plain.trainable_state_dict(), "temporal_embedding": torch.zeros(3, NF, 64)}
    )  # 3 blocks
    video = frames()
    reverse = video.flip(1)
    with torch.no_grad():
        assert torch.allclose(model.encode_video(video), plain.encode_video(video), atol=1e-6)  # zero init
        # one event over every frame, no adapter: attention over a set of frames ignores their order
        assert torch.allclose(plain.encode_video(reverse), plain.encode_video(video), atol=1e-5)
        model.temporal_embedding.normal_(0, 0.5)
        assert not torch.allclose(model.encode_video(reverse), model.encode_video(video), atol=1e-3)
        # CLIP's own per-frame path never sees the embedding
        assert torch.allclose(model.encode_frames(video), plain.encode_frames(video), atol=1e-6)
    assert model.temporal_embedding.requires_grad


def test_cls_event_prompt_init_starts_every_event_at_clips_cls_token(clip):
    torch.manual_seed(10)
    model = build_model(cfg(event_prompt_init="cls"), clip)
    torch.manual_seed(10)
    paper = build_model(cfg(event_prompt_init="uniform"), clip)  # the same uniform draw
    visual = clip.visual
    with torch.no_grad():
        cls = visual.ln_pre(visual.class_embedding + visual.positional_embedding[0])
    assert torch.allclose(model.event_prompts.prompts, paper.event_prompts.prompts + cls, atol=1e-6)
    assert cls.norm() > 10 * paper.event_prompts.prompts.norm(dim=-1).max()  # far from the paper's tiny tokens


def test_seqconv_starts_as_maxframe_and_can_subtract_the_frame_before(clip):
    model = build_model(cfg(kind="seqconv"), clip)  # kernel 3
    video = frames()
    maxframe = MaxFrameCLIP(clip, NF)
    with torch.no_grad():
        assert torch.allclose(model.encode_video(video), maxframe.encode_video(video), atol=1e-6)
        model.conv.weight[:, :, 0] = -torch.eye(64)  # tap t-1: event t = f_t - f_{t-1}, a signed difference
        f = maxframe.encode_video(video)
        expected = f - torch.cat([torch.zeros_like(f[:, :1]), f[:, :-1]], 1)  # zero padding before frame 0
        assert torch.allclose(model.encode_video(video), expected, atol=1e-5)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["conv.weight", "conv.bias"]
    # event t reads frames t-1..t+1, clipped to the video
    assert model.proposals[[0, 3, NF - 1]].tolist() == [[0.0, 2 / NF], [2 / NF, 5 / NF], [(NF - 2) / NF, 1.0]]
