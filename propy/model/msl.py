"""MS-SL (Dong et al., ACM MM 2022, "Partially Relevant Video Retrieval") on a frozen CLIP.

The prior PRVR method the study compares ProPy with, on the same frozen CLIP, written from the paper
and its public code (HuiGuanLab/ms-sl); docs/msl.md lists every place where this one differs.

Inputs: per video ``msl.frames`` frozen CLIP image embeddings (``propy features`` computes them once
per dataset; raw frames also work and run CLIP first), per query the frozen CLIP text tower's token
states in the joint space. Every input gets a projection (LayerNorm, dropout, linear, ReLU), learned
positions and one BERT-style self-attention layer. Two scales score a (query, video) pair:

- clip scale: the frames are average-pooled into ``msl.slots`` equal slots and encoded; every run of
  consecutive slots (the mean of its slots, widths 1..slots) is a clip proposal, slots * (slots + 1) / 2
  of them (32 -> 528). The score is the best proposal's cosine; that proposal is the key clip.
- frame scale: the encoded frames are attended with the key clip as the attention query (linear keys
  and values); the score is the cosine of the attended feature.

Ranking score: ``scale_weights[0] * clip + scale_weights[1] * frame``. The proposals' spans are the
model's events, so VCMR ranks moments by their clip-scale cosines as it ranks ProPy's events.
"""

from __future__ import annotations

import typing

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from propy.config import MslConfig
from propy.model.network import VideoModel, clip_text_states
from propy.train.losses import symmetric_infonce


def window_slots(slots: int) -> np.ndarray:
    """[slots * (slots + 1) / 2, 2] (first slot, end slot exclusive) of every run of consecutive slots,
    by width (1 first), then by start: the reference's proposal order."""
    return np.array(
        [(start, start + width) for width in range(1, slots + 1) for start in range(slots - width + 1)], dtype=np.int64
    )


class _Layer(nn.Module):
    """Projection (LayerNorm, dropout, linear, ReLU), learned positions (added, LayerNorm, dropout) and
    one self-attention layer whose output is added to its input and layer-normalised (no feed-forward)."""

    def __init__(self, in_dim: int, cfg: MslConfig, max_len: int) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Dropout(cfg.dropout), nn.Linear(in_dim, cfg.hidden), nn.ReLU()
        )
        self.positions = nn.Embedding(max_len, cfg.hidden)
        self.position_norm = nn.LayerNorm(cfg.hidden)
        self.attention = nn.MultiheadAttention(cfg.hidden, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.output_norm = nn.LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """[N, L, in_dim] -> [N, L, hidden]; ``padding`` [N, L] is True where a position is padding."""
        x = self.project(x) + self.positions.weight[: x.shape[1]]
        x = self.dropout(self.position_norm(x))
        attended, _ = self.attention(x, x, x, key_padding_mask=padding, need_weights=False)
        return self.output_norm(x + self.dropout(attended))


def _negatives(scores: torch.Tensor, positive: torch.Tensor, pool: int | None) -> torch.Tensor:
    """[N] one sampled negative score per row: uniformly among the row's non-positive columns, or among
    its ``pool`` highest-scoring ones (the hard-negative schedule). Every row needs a negative."""
    keys = scores.detach().masked_fill(positive, float("-inf"))
    order = keys.argsort(dim=1, descending=True)
    available = (~positive).sum(dim=1)
    limit = available if pool is None else available.clamp(max=pool)
    pick = (torch.rand(len(scores), device=scores.device) * limit).long().clamp(max=scores.shape[1] - 1)
    rows = torch.arange(len(scores), device=scores.device)
    return scores[rows, order[rows, pick]]


def _hinge(margin: float, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    return (margin + negative - positive).clamp(min=0).mean()


class MsSL(VideoModel):
    """MS-SL's clip and frame scales over frozen CLIP frame embeddings and query token states."""

    def __init__(self, cfg: MslConfig, clip: open_clip.CLIP):
        spans = torch.from_numpy(window_slots(cfg.slots))
        super().__init__(clip, spans.float() / cfg.slots)
        self.cfg = cfg
        self.num_frames = cfg.frames
        self.register_buffer("window_bounds", spans, persistent=False)
        dim = clip.visual.output_dim
        self.clip_encoder = _Layer(dim, cfg, cfg.slots)
        self.frame_encoder = _Layer(dim, cfg, cfg.frames)
        self.query_encoder = _Layer(dim, cfg, clip.positional_embedding.shape[0])
        self.query_pool = nn.Linear(cfg.hidden, 1, bias=False)  # the reference's modular attention
        self.frame_key = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.frame_value = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        trained = (
            self.clip_encoder,
            self.frame_encoder,
            self.query_encoder,
            self.query_pool,
            self.frame_key,
            self.frame_value,
        )
        for module in (m for part in trained for m in part.modules()):  # the reference's (BERT's) init
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                bias = getattr(module, "bias", None)
                if isinstance(bias, torch.Tensor):
                    nn.init.zeros_(bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)

    # ---------------------------------------------------------------- encoders

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[Nt, L] tokens -> [Nt, hidden]: the frozen CLIP token states, encoded, attention-pooled."""
        with torch.no_grad():
            states = clip_text_states(self.clip, tokens)
            proj = self.clip.text_projection
            states = proj(states) if isinstance(proj, nn.Linear) else states @ proj
        padding = tokens == 0
        encoded = self.query_encoder(states, padding)
        weights = self.query_pool(encoded).squeeze(-1).masked_fill(padding, float("-inf")).softmax(dim=-1)
        return torch.einsum("tl,tlh->th", weights, encoded)

    def encode_video(self, x: torch.Tensor) -> torch.Tensor:
        """Frame embeddings [B, frames, D] (or raw frames [B, frames, 3, S, S], run through the frozen
        CLIP first) -> [B, P + 2 * frames, hidden]: the P clip proposals, then the frames' attention
        keys, then their values; :meth:`score` splits them again."""
        if x.ndim == 5:
            with torch.no_grad():
                x = self.clip.encode_image(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        if x.ndim != 3 or x.shape[1] != self.num_frames:
            raise ValueError(
                f"expected [B, {self.num_frames}, D] frame embeddings (model.msl.frames), got {tuple(x.shape)}"
            )
        slots = F.adaptive_avg_pool1d(x.transpose(1, 2), self.cfg.slots).transpose(1, 2)
        clips = self.clip_encoder(slots)  # [B, S, H]
        sums = F.pad(clips.cumsum(dim=1), (0, 0, 1, 0))  # sums[:, i] = clips[:, :i].sum(1)
        start, end = typing.cast(torch.Tensor, self.window_bounds).unbind(dim=1)
        proposals = (sums[:, end] - sums[:, start]) / (end - start)[:, None].to(clips.dtype)
        frames = self.frame_encoder(x)
        return torch.cat([proposals, self.frame_key(frames), self.frame_value(frames)], dim=1)

    def _split(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return videos.split([self.num_events, self.num_frames, self.num_frames], dim=1)

    # ---------------------------------------------------------------- scores

    def score(
        self, text_emb: torch.Tensor, video_emb: torch.Tensor, normalize_events: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ranking scores [Nt, Nv], clip-scale proposal scores [Nt, Nv, P]); cosines, or with
        ``normalize_events=False`` the normalised query against raw video features. Videos are
        scored in chunks, so the per-pair attended features stay small."""
        text = F.normalize(text_emb, dim=-1)
        w_clip, w_frame = self.cfg.scale_weights
        chunk = max(1, 2**25 // (len(text) * max(self.num_events, self.num_frames, text.shape[-1])))
        logits, per_event = [], []
        for videos in video_emb.to(text.dtype).split(chunk):
            proposals, keys, values = self._split(videos)
            clip = torch.einsum("th,vph->tvp", text, F.normalize(proposals, dim=-1) if normalize_events else proposals)
            best, key_clip = clip.max(dim=-1)
            # the key clip of every (query, video) pair attends over that video's frames
            query = proposals[torch.arange(len(videos), device=text.device), key_clip]  # [Nt, v, H]
            weights = torch.einsum("tvh,vfh->tvf", query, keys).softmax(dim=-1)
            attended = torch.einsum("tvf,vfh->tvh", weights, values)
            frame = torch.einsum("th,tvh->tv", text, F.normalize(attended, dim=-1) if normalize_events else attended)
            logits.append(w_clip * best + w_frame * frame)
            per_event.append(clip)
        return torch.cat(logits, dim=1), torch.cat(per_event, dim=1)

    def loss(self, video_emb: torch.Tensor, text_emb: torch.Tensor, labels: torch.Tensor, epoch: int) -> torch.Tensor:
        """The reference's loss: triplet ranking on each scale plus InfoNCE on each scale (weights
        ``nce_weights``); triplet negatives are random, hard from ``hard_negative_start_epoch``.

        As in the reference, the frame scale is trained on a [Nt, Nt] matrix: column j is query j's
        own video attended with query j's key clip; its diagonal holds the positives.
        """
        cfg = self.cfg
        proposals, keys, values = self._split(video_emb)
        raw = torch.einsum("th,vph->tvp", text_emb, proposals)
        cosine = torch.einsum("th,vph->tvp", F.normalize(text_emb, dim=-1), F.normalize(proposals, dim=-1))
        clip_scores, key_clip = cosine.max(dim=-1)  # [Nt, B]
        rows = torch.arange(len(labels), device=labels.device)
        query = proposals[labels, key_clip[rows, labels]]  # [Nt, H]: own video's key clip
        weights = torch.einsum("th,tfh->tf", query, keys[labels]).softmax(dim=-1)
        attended = torch.einsum("tf,tfh->th", weights, values[labels])
        frame_raw = text_emb @ attended.T
        frame_scores = F.normalize(text_emb, dim=-1) @ F.normalize(attended, dim=-1).T

        hard = cfg.hard_negative_start_epoch is not None and epoch >= cfg.hard_negative_start_epoch
        pool = cfg.hard_pool_size if hard else None
        own = labels[:, None] == torch.arange(video_emb.shape[0], device=labels.device)[None, :]
        positives = (clip_scores * own).sum(dim=0) / own.sum(dim=0)  # a video's queries, averaged
        clip_triplet = _hinge(cfg.margin, clip_scores[rows, labels], _negatives(clip_scores, own, pool)) + _hinge(
            cfg.margin, positives, _negatives(clip_scores.T, own.T, 1 if hard else None)
        )
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        diagonal = frame_scores.diagonal()
        frame_triplet = _hinge(cfg.margin, diagonal, _negatives(frame_scores, eye, pool)) + _hinge(
            cfg.margin, diagonal, _negatives(frame_scores.T, eye, pool)
        )
        # symmetric_infonce averages its two directions; the reference adds them
        clip_nce = 2 * symmetric_infonce(raw.max(dim=-1).values, labels)
        frame_nce = (torch.logsumexp(torch.cat([frame_raw, frame_raw.T], dim=1), dim=1) - frame_raw.diagonal()).mean()
        w_clip, w_frame = cfg.nce_weights
        return w_clip * clip_nce + clip_triplet + w_frame * frame_nce + frame_triplet
