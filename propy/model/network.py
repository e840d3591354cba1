"""ProPy on a frozen open_clip CLIP, and the zero-shot frame baselines.

Vision: every frame runs through CLIP's own blocks as one [B*Nf, T, W] batch
with CLIP's ordinary per-frame self-attention (plus the temporal adapter on
its patch outputs), so CLIP sees its usual inputs. The Ne event prompts of all
videos are extra queries: in every block they attend, in ONE masked
``scaled_dot_product_attention`` call that reuses the block's frozen
in/out projections, to the events, the frame-prompt copies and the frame tokens
the ADI mask (propy.model.masks) allows. Keys and values come from ``ln_1`` of the
block input. Event embeddings are ``ln_post(event) @ proj``.

Text: CLIP's text blocks under a causal mask, with the projected frame prompts
inserted after [SOS] in each layer and dropped again after it.
"""

from __future__ import annotations

import typing

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import (
    ResidualAttentionBlock,
    VisionTransformer,
    text_global_pool,
)
from torch import nn

from propy.config import ModelConfig
from propy.errors import ConfigError
from propy.model.adapters import TemporalAdapter
from propy.model.masks import event_attention_mask
from propy.model.prompts import (
    EventPrompts,
    FramePrompts,
    TextPrompts,
    per_level1_event,
)
from propy.model.pyramid import Pyramid
from propy.train.losses import symmetric_infonce

# --------------------------------------------------------------------------- shared CLIP pieces


def check_clip(clip: nn.Module) -> None:
    """ProPy rewires open_clip's plain ViT and text tower; anything else is a ConfigError."""
    visual = getattr(clip, "visual", None)
    if not isinstance(clip, open_clip.CLIP) or not isinstance(visual, VisionTransformer):
        raise ConfigError("clip.model: ProPy needs an open_clip.CLIP with a VisionTransformer tower")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise ConfigError("clip.model: the vision tower must pool the CLS token (pool_type 'tok')")
    for tower, blocks in (("vision", visual.transformer), ("text", clip.transformer)):
        plain = all(isinstance(b, ResidualAttentionBlock) for b in blocks.resblocks)
        if not blocks.batch_first or not plain:
            raise ConfigError(f"clip.model: the {tower} tower must use open_clip's batch-first blocks")


def _causal_mask(length: int, like: torch.Tensor) -> torch.Tensor:
    """CLIP's text mask: -inf above the diagonal (a token sees itself and earlier tokens)."""
    return torch.full((length, length), float("-inf"), device=like.device, dtype=like.dtype).triu_(1)


def encode_clip_text(
    clip: open_clip.CLIP,
    tokens: torch.Tensor,
    prefix: torch.Tensor | None = None,
    postfix: torch.Tensor | None = None,
) -> torch.Tensor:
    """[Nt, L] tokens (L <= context length) -> [Nt, D], CLIP's text encoder with optional prompts.

    prefix/postfix: [layers, Nvp, Wt]; text layer i gets prompt i (i < layers).
    With no prompts this equals ``clip.encode_text`` for L == context length.
    """
    x = clip_text_states(clip, tokens, prefix, postfix)
    x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
    proj = clip.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def clip_text_states(
    clip: open_clip.CLIP,
    tokens: torch.Tensor,
    prefix: torch.Tensor | None = None,
    postfix: torch.Tensor | None = None,
) -> torch.Tensor:
    """[Nt, L, Wt]: every token's state after CLIP's text blocks and ``ln_final``, before pooling."""
    n, length = tokens.shape
    context = clip.positional_embedding.shape[0]
    if length > context:
        raise ConfigError(f"train.max_words: {length} tokens exceed the CLIP text context length {context}")
    x = clip.token_embedding(tokens).to(clip.transformer.get_cast_dtype())
    x = x + clip.positional_embedding[:length].to(x.dtype)
    for i, block in enumerate(clip.transformer.resblocks):
        parts = [x[:, :1]]
        if prefix is not None and i < prefix.shape[0]:
            parts.append(prefix[i].to(x.dtype).expand(n, -1, -1))
        first = sum(p.shape[1] for p in parts)  # where the text after [SOS] starts
        parts.append(x[:, 1:])
        if postfix is not None and i < postfix.shape[0]:
            parts.append(postfix[i].to(x.dtype).expand(n, -1, -1))
        if len(parts) == 2:  # no prompts in this layer
            x = block(x, attn_mask=_causal_mask(length, x))
            continue
        seq = torch.cat(parts, dim=1)
        seq = block(seq, attn_mask=_causal_mask(seq.shape[1], seq))
        x = torch.cat([seq[:, :1], seq[:, first : first + length - 1]], dim=1)  # prompts dropped
    return clip.ln_final(x)


class VideoModel(nn.Module):
    """What every video model shares: the frozen CLIP (always in eval mode), proposals, logit scale."""

    proposals: torch.Tensor  # buffers, declared for type checkers
    logit_scale: torch.Tensor

    def __init__(self, clip: open_clip.CLIP, proposals: torch.Tensor):
        super().__init__()
        check_clip(clip)
        clip.requires_grad_(False)
        self.clip = clip.eval()
        self.register_buffer("proposals", proposals.float(), persistent=False)
        self.register_buffer("logit_scale", clip.logit_scale.detach().exp().clone(), persistent=False)

    def train(self, mode: bool = True) -> VideoModel:
        super().train(mode)
        self.clip.eval()  # frozen: no patch dropout or other train-time behaviour
        return self

    @property
    def num_events(self) -> int:
        return int(self.proposals.shape[0])

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_clip_text(self.clip, tokens)

    def score(
        self, text_emb: torch.Tensor, video_emb: torch.Tensor, normalize_events: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [Nt, Nv], per-proposal scores [Nt, Nv, Ne]) of ``encode_text`` / ``encode_video``
        outputs: here the max over events of the cosine (:func:`scores`)."""
        return scores(text_emb, video_emb, normalize_events)

    def loss(self, video_emb: torch.Tensor, text_emb: torch.Tensor, labels: torch.Tensor, epoch: int) -> torch.Tensor:
        """The training loss of one batch (``labels`` [Nt]: each query's video); symmetric InfoNCE
        over the scaled logits. ``epoch`` (0-based) is for losses with a schedule (MS-SL's)."""
        logits, _ = self.score(text_emb, video_emb)
        return symmetric_infonce(logits * self.logit_scale, labels)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained tensors (CLIP is frozen and loaded from its own checkpoint)."""
        return {name: p.detach().clone() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = {name for name, p in self.named_parameters() if p.requires_grad}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ConfigError(
                "trained weights do not fit this model config: "
                f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
        self.load_state_dict(state, strict=False)


def _check_frames(frames: torch.Tensor, num_frames: int) -> None:
    if frames.ndim != 5 or frames.shape[1] != num_frames:
        shape = tuple(frames.shape)
        raise ValueError(f"frames must be [B, {num_frames}, 3, S, S] (model.num_frames), got {shape}")


# --------------------------------------------------------------------------- baselines


class _FrameBaseline(VideoModel):
    """Frozen CLIP on each frame; subclasses turn the frame embeddings into events."""

    def __init__(self, clip: open_clip.CLIP, num_frames: int, proposals: torch.Tensor):
        super().__init__(clip, proposals)
        self.num_frames = num_frames

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, Nf, 3, S, S] -> [B, Nf, D] CLIP image embeddings (CLS after ln_post and proj)."""
        _check_frames(frames, self.num_frames)
        return self.clip.encode_image(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])


class MeanPoolCLIP(_FrameBaseline):
    """One event per video: the mean of its frame embeddings."""

    def __init__(self, clip: open_clip.CLIP, num_frames: int):
        super().__init__(clip, num_frames, torch.tensor([[0.0, 1.0]]))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encode_frames(frames).mean(dim=1, keepdim=True)


class MaxFrameCLIP(_FrameBaseline):
    """Every frame is an event of one frame (the score is the best frame)."""

    def __init__(self, clip: open_clip.CLIP, num_frames: int):
        starts = torch.arange(num_frames, dtype=torch.float32)
        super().__init__(clip, num_frames, torch.stack([starts, starts + 1], dim=1) / num_frames)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encode_frames(frames)


class SeqConvCLIP(_FrameBaseline):
    """Beyond the paper, the positive control for order: frame embeddings plus a learned temporal conv.

    Event t is frame t's CLIP embedding plus a temporal convolution over all channels
    (kernel k, D -> D, zero-init: it starts as MaxFrameCLIP) over its neighbours. Unlike
    attention, whose weights are positive, a convolution can subtract the frame before
    from the frame after, which is what telling "ends on the left" from its reverse needs.
    Its proposals are the k frames each output reads.
    """

    def __init__(self, clip: open_clip.CLIP, num_frames: int, kernel: int):
        centre = torch.arange(num_frames, dtype=torch.float32)
        spans = torch.stack([(centre - kernel // 2).clamp(min=0), (centre + kernel // 2 + 1).clamp(max=num_frames)], 1)
        super().__init__(clip, num_frames, spans / num_frames)
        dim = clip.visual.output_dim
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(typing.cast(torch.Tensor, self.conv.bias))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        f = self.encode_frames(frames)  # [B, Nf, D]
        return f + self.conv(f.transpose(1, 2)).transpose(1, 2)


# --------------------------------------------------------------------------- ProPy


def _layer_count(value: int | None, available: int, field: str) -> int:
    """Resolve ``None`` (all) and check 1 <= value <= available."""
    if value is None:
        return available
    if not 1 <= value <= available:
        raise ConfigError(f"{field}: {value} is outside 1..{available} for this CLIP's vision blocks")
    return value


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[..., L, W] -> [..., heads, L, W / heads]."""
    return x.unflatten(-1, (num_heads, -1)).transpose(-3, -2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[..., heads, L, d] -> [..., L, heads * d]."""
    return x.transpose(-3, -2).flatten(-2)


class ProPy(VideoModel):
    """Prompt pyramid + ADI + deep frame prompts + temporal adapters + text prompts."""

    def __init__(self, cfg: ModelConfig, clip: open_clip.CLIP):
        pyramid = cfg.event_pyramid
        super().__init__(clip, torch.from_numpy(pyramid.proposals()))
        self.pyramid: Pyramid = pyramid
        visual = clip.visual
        blocks = len(visual.transformer.resblocks)
        width, patch = visual.transformer.width, visual.patch_size[0]
        self.tokens_per_frame = visual.grid_size[0] * visual.grid_size[1] + 1
        self.num_level1 = pyramid.counts[1]

        self.event_prompts = EventPrompts(pyramid.num_events, width, patch)
        if cfg.event_prompt_init == "cls":  # beyond the paper: every event starts as CLIP's CLS token (+ its noise)
            with torch.no_grad():
                cls = visual.ln_pre(visual.class_embedding + visual.positional_embedding[0])
                self.event_prompts.prompts.add_(cls)
        self.frame_prompts = None
        self.text_prompts = None
        if cfg.frame_prompts:
            layers = _layer_count(cfg.prompt_layers, blocks, "model.prompt_layers")
            self.frame_prompts = FramePrompts(layers, cfg.frame_prompts, width, patch)
            if cfg.text_prompts or cfg.postfix_prompts:
                self.text_prompts = TextPrompts(
                    width, clip.transformer.width, prefix=cfg.text_prompts, postfix=cfg.postfix_prompts
                )
        elif cfg.postfix_prompts:
            raise ConfigError(
                "model.postfix_prompts: text prompts are projected from frame prompts; set frame_prompts > 0"
            )
        # The last block's frame outputs reach no event (events read a block's input), so an
        # adapter there would never be trained: adapters live in the first blocks - 1 at most.
        adapters = _layer_count(cfg.adapter_layers, blocks - 1, "model.adapter_layers") if cfg.adapters else 0
        self.adapters = nn.ModuleList(
            TemporalAdapter(width, cfg.adapter_width, cfg.adapter_kernel) for _ in range(adapters)
        )
        # Beyond the paper (model.temporal_embedding): a learned vector per block and frame position,
        # added to the frame tokens only where the events read them (their keys and values). Zero at
        # the start, so training starts from ProPy; CLIP's own per-frame path never sees it.
        self.temporal_embedding = (
            nn.Parameter(torch.zeros(blocks, pyramid.num_frames, width)) if cfg.temporal_embedding else None
        )
        # Built once per config (additive: 0 allowed, -inf blocked). Layers past the deep
        # prompts use the same mask without the frame-prompt columns.
        mask = torch.from_numpy(
            event_attention_mask(pyramid, cfg.interaction, self.tokens_per_frame, cfg.frame_prompts)
        )
        ne, copies = pyramid.num_events, cfg.frame_prompts * self.num_level1
        self.register_buffer("mask_with_prompts", mask, persistent=False)
        self.register_buffer(
            "mask_without_prompts", torch.cat([mask[:, :ne], mask[:, ne + copies :]], 1), persistent=False
        )

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, Nf, 3, S, S] normalised frames -> [B, Ne, D] un-normalised event embeddings."""
        return self._encode(frames, frame_cls=False)[0]

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, Nf, D] frame CLS embeddings of the ProPy pass (CLIP's encode_image while adapters are 0)."""
        cls = self._encode(frames, frame_cls=True)[1]
        assert cls is not None  # frame_cls=True always returns them
        return cls

    def _encode(self, frames: torch.Tensor, frame_cls: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(events [B, Ne, D], frame CLS embeddings [B, Nf, D] if ``frame_cls`` else None)."""
        _check_frames(frames, self.pyramid.num_frames)
        visual = self.clip.visual
        batch = frames.shape[0]
        x = visual._embeds(frames.flatten(0, 1))  # [B*Nf, T, W], after ln_pre
        events = self.event_prompts(batch).to(x.dtype)  # join after ln_pre, no positional embedding
        blocks = visual.transformer.resblocks
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            x, events = self._block(block, i, x, events, update_frames=frame_cls or not last)
        cls = self._embed(x[:, 0]).unflatten(0, (batch, -1)) if frame_cls else None
        return self._embed(events), cls

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP's image head on any token: ln_post, then proj."""
        return self.clip.visual.ln_post(tokens) @ self.clip.visual.proj

    def _block(
        self,
        block: ResidualAttentionBlock,
        index: int,
        x: torch.Tensor,
        events: torch.Tensor,
        update_frames: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One CLIP block: frames [B*Nf, T, W] attend per frame; events [B, Ne, W] attend under ADI.

        Without ``update_frames`` (the last block, when only events are wanted)
        the frames are only keys/values: their own update would reach no output.
        """
        attn, width = block.attn, x.shape[-1]
        if update_frames:
            qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)  # [B*Nf, T, 3W]
            q, k, v = (_heads(t, attn.num_heads) for t in qkv.split(width, dim=-1))
            frame_out = attn.out_proj(_merge(F.scaled_dot_product_attention(q, k, v)))  # [B*Nf, T, W]
            if index < len(self.adapters):  # x + attn + adapter(attn), patch tokens only
                delta = self.adapters[index](frame_out[:, 1:].unflatten(0, (events.shape[0], -1)))
                frame_out[:, 1:] += delta.flatten(0, 1)
            frame_kv = qkv[..., width:]
            x = x + block.ls_1(frame_out)
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        else:
            kv_weight, kv_bias = attn.in_proj_weight[width:], attn.in_proj_bias[width:]
            frame_kv = F.linear(block.ln_1(x), kv_weight, kv_bias)
        events = events + block.ls_1(self._event_attention(block, index, events, frame_kv))
        events = events + block.ls_2(block.mlp(block.ln_2(events)))
        return x, events

    def _event_attention(
        self, block: ResidualAttentionBlock, index: int, events: torch.Tensor, frame_kv: torch.Tensor
    ) -> torch.Tensor:
        """All events of all videos in one masked attention: [B, Ne, W] -> attention output, same shape.

        Keys/values, in mask column order: the events, the frame-prompt copies
        (identical for every video, so projected once), the frame tokens
        (``frame_kv`` [B*Nf, T, 2W], the frames' own keys/values of this block).
        """
        attn, (batch, _, width) = block.attn, events.shape
        weight, bias = attn.in_proj_weight, attn.in_proj_bias
        query, event_kv = F.linear(block.ln_1(events), weight, bias).split([width, 2 * width], dim=-1)
        kv = [event_kv]
        prompts_of = self.frame_prompts
        with_prompts = prompts_of is not None and index < prompts_of.num_layers
        if prompts_of is not None and with_prompts:
            prompts = block.ln_1(prompts_of.prompts[index].to(events.dtype))
            prompt_kv = F.linear(prompts, weight[width:], bias[width:])
            kv.append(per_level1_event(prompt_kv, self.num_level1).expand(batch, -1, -1))
        frames = frame_kv.unflatten(0, (batch, -1))  # [B, Nf, T, 2W]
        if self.temporal_embedding is not None:  # W_kv (ln_1(x) + e_f) = W_kv ln_1(x) + W_kv e_f
            frames = frames + F.linear(self.temporal_embedding[index].to(frames.dtype), weight[width:])[None, :, None]
        kv.append(frames.flatten(1, 2))  # token t of frame f at f*T + t
        key, value = (_heads(t, attn.num_heads) for t in torch.cat(kv, dim=1).split(width, dim=-1))
        mask = typing.cast(torch.Tensor, self.mask_with_prompts if with_prompts else self.mask_without_prompts).to(
            key.dtype
        )
        out = F.scaled_dot_product_attention(_heads(query, attn.num_heads), key, value, attn_mask=mask)
        return attn.out_proj(_merge(out))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[Nt, L] -> [Nt, D]; with text prompts, layer i sees the projection of frame prompts i."""
        if self.text_prompts is None or self.frame_prompts is None:  # text prompts come from frame prompts
            return encode_clip_text(self.clip, tokens)
        prefix, postfix = self.text_prompts(self.frame_prompts.prompts)
        return encode_clip_text(self.clip, tokens, prefix, postfix)


# --------------------------------------------------------------------------- factory and scoring


def build_model(model_cfg: ModelConfig, clip_model: open_clip.CLIP) -> VideoModel:
    """ProPy, SeqConvCLIP, MsSL, MeanPoolCLIP or MaxFrameCLIP per ``model.kind``; CLIP is frozen in place."""
    if model_cfg.kind == "msl":
        from propy.model.msl import MsSL  # a prior method, in its own module

        return MsSL(model_cfg.msl, clip_model)
    if model_cfg.kind == "seqconv":
        return SeqConvCLIP(clip_model, model_cfg.num_frames, model_cfg.adapter_kernel)
    if model_cfg.kind == "meanpool":
        return MeanPoolCLIP(clip_model, model_cfg.num_frames)
    if model_cfg.kind == "maxframe":
        return MaxFrameCLIP(clip_model, model_cfg.num_frames)
    return ProPy(model_cfg, clip_model)


def scores(
    text_emb: torch.Tensor, event_emb: torch.Tensor, normalize_events: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over events of cosine(query, event): (logits [Nt, Nv], per_event [Nt, Nv, Ne]).

    Queries are always L2-normalised; ``normalize_events=False`` ranks with raw
    event embeddings (the reference's ActivityNet evaluation quirk). No logit
    scale here: the loss multiplies by ``model.logit_scale``.
    """
    text = F.normalize(text_emb, dim=-1)
    events = F.normalize(event_emb, dim=-1) if normalize_events else event_emb
    per_event = torch.einsum("td,ved->tve", text, events.to(text.dtype))
    return per_event.max(dim=-1).values, per_event
