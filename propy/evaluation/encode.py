"""Encode a split's gallery and queries once, score them, rank: shared by validation and evaluation.

Every gallery video is encoded once into its Ne event embeddings and every
query once; scoring then runs over query chunks, so the [chunk, Nv, Ne]
per-event scores (which ``propy.evaluation.evaluate`` also needs for VCMR) stay small.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from propy.config import Layout, Params
from propy.data.annotations import Record, load_annotations
from propy.data.cache import FrameCache
from propy.data.datasets import VideoClips, cached_queries, query_tokens
from propy.errors import ConfigError
from propy.evaluation.metrics import positive_ranks, prvr_metrics
from propy.model.backbone import Backbone
from propy.model.network import scores


@dataclass
class SplitData:
    """A split ready to encode: the gallery (evaluation-mode clips) and its queries."""

    split: str
    records: list[Record]  # the queries of cached videos, video by video
    vid_names: list[str]  # the gallery, in order of first appearance
    positives: np.ndarray  # [Nt] gallery index of each query's own video
    durations: np.ndarray  # [Nv] seconds of each cached video: its Nf frames' segments tile it (proposals scale by it)
    clips: Dataset  # VideoClips, or FrameFeatures for MS-SL (video_inputs)
    tokens: torch.Tensor  # [Nt, max_words]


def video_inputs(
    params: Params, layout: Layout, cache: FrameCache, vid_names: list[str], backbone: Backbone, train: bool, seed: int
) -> Dataset:
    """What the model's ``encode_video`` reads per video: normalised frames, or for MS-SL
    (``model.kind: msl``) the frozen frame embeddings that ``propy features`` wrote."""
    if params.model.kind != "msl":
        return VideoClips(
            cache, vid_names, params.model.num_frames, backbone.mean, backbone.std, train=train, seed=seed
        )
    from propy.data.features import FrameFeatures

    if layout.features is None:
        raise ConfigError(
            f"variant {params.variant!r} (model.kind msl) reads frozen frame embeddings: pass "
            "--features (written by `python -m propy features`, e.g. data/features)"
        )
    return FrameFeatures(
        layout.features / cache.dir.name, params.clip, cache, vid_names, params.model.msl.frames, train=train, seed=seed
    )


def load_split(params: Params, layout: Layout, split: str, backbone: Backbone) -> SplitData:
    """Annotations of ``split`` joined with its frame cache, tokenised with ``train.max_words``."""
    path = layout.annotations(split)
    cache = FrameCache(layout.cache, split).require_size(backbone.image_size, params.clip.model)
    queries = cached_queries(load_annotations(path), cache.names, str(path))
    clips = video_inputs(
        params, layout, cache, queries.vid_names, backbone, train=False, seed=0
    )  # evaluation samples segment centres: no randomness
    return SplitData(
        split=split,
        records=queries.records,
        vid_names=queries.vid_names,
        positives=np.array([v for v, group in enumerate(queries.groups) for _ in group], dtype=np.int64),
        durations=np.array([cache.duration(v) for v in queries.vid_names], dtype=np.float64),
        clips=clips,
        tokens=query_tokens(queries.records, backbone.tokenizer, params.train.max_words),
    )


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """``model.eval()`` under ``torch.no_grad()``; the previous train/eval mode comes back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def encode_videos(model: nn.Module, clips: Dataset, batch_videos: int, device: torch.device) -> torch.Tensor:
    """[Nv, Ne, D] un-normalised event embeddings (MS-SL: its packed features) of every clip, in clip order."""
    loader = DataLoader(clips, batch_size=batch_videos, shuffle=False)
    with _inference(model):
        out = [model.encode_video(frames.to(device)).float() for frames in tqdm(loader, desc="videos", disable=None)]
    return torch.cat(out)


def encode_queries(model: nn.Module, tokens: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """[Nt, D] query embeddings, in token order."""
    chunks = tokens.split(batch)
    with _inference(model):
        out = [model.encode_text(t.to(device)).float() for t in tqdm(chunks, desc="queries", disable=None)]
    return torch.cat(out)


@dataclass
class Encoded:
    """A split's embeddings: queries [Nt, D] and gallery events [Nv, Ne, D]."""

    data: SplitData
    queries: torch.Tensor
    videos: torch.Tensor
    scorer: Callable = scores  # the model's ``score`` (MS-SL scores a video by more than its events)

    def score_chunks(
        self, batch: int, normalize_events: bool = True
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """(query slice, logits [n, Nv], per-event cosines [n, Nv, Ne]) for chunks of ``batch`` queries."""
        for start in range(0, len(self.queries), batch):
            rows = slice(start, min(start + batch, len(self.queries)))
            logits, per_event = self.scorer(self.queries[rows], self.videos, normalize_events=normalize_events)
            yield rows, logits, per_event

    def ranks(self, batch: int, normalize_events: bool = True) -> np.ndarray:
        """[Nt] 1-based rank of each query's own video (pessimistic ties)."""
        logits = torch.cat([lg.cpu() for _, lg, _ in self.score_chunks(batch, normalize_events)])
        return positive_ranks(logits.double().numpy(), self.data.positives)


def encode_split(
    model: nn.Module, data: SplitData, batch_videos: int, batch_queries: int, device: torch.device
) -> Encoded:
    """Every query and every gallery video of ``data``, encoded once."""
    return Encoded(
        data=data,
        queries=encode_queries(model, data.tokens, batch_queries, device),
        videos=encode_videos(model, data.clips, batch_videos, device),
        scorer=model.score,
    )


def retrieval(
    model: nn.Module, data: SplitData, params: Params, device: torch.device, normalize_events: bool | None = None
) -> dict[str, float]:
    """Text-to-video R@K (``eval.ks``), SumR, MedR and MeanR of ``model`` on ``data``."""
    cfg = params.eval
    encoded = encode_split(model, data, cfg.batch_videos, cfg.batch_queries, device)
    normalize = cfg.normalize_events if normalize_events is None else normalize_events
    return prvr_metrics(encoded.ranks(cfg.batch_queries, normalize), cfg.ks)
