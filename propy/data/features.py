"""Frozen CLIP frame embeddings of the frame cache: computed once per dataset, read by MS-SL.

MS-SL (``model.kind: msl``, propy/model/msl.py) trains on frozen frame embeddings, so they are computed
once (``propy features``, a DVC stage) instead of running CLIP's vision tower at every step of every
seed. ``<out>/<split>/`` holds ``features.npy`` (float16 [total frames, D], every cached frame of
every video, video after video) and ``manifest.json`` (``{"stamp": {...}, "videos": {vid_name:
[first row, frames]}}``), written last: its presence means the split is complete. The stamp names
the CLIP (model, weights' SHA-256) and the cache manifest the embeddings come from; a reader with
another one gets a DataError instead of stale embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from propy.config import SPLITS, ClipConfig, Layout
from propy.data.cache import MANIFEST, FrameCache
from propy.data.datasets import SampledVideos
from propy.data.video import normalize
from propy.errors import DataError
from propy.model.backbone import Backbone
from propy.model.checkpoint import file_digest
from propy.runtime.files import atomic_save_npy, atomic_write_json, read_json
from propy.runtime.progress import progress

FEATURES = "features.npy"


def stamp(clip: ClipConfig, cache: FrameCache) -> dict:
    """What a split's embeddings depend on: the CLIP and its weights, the cached frames."""
    weights = Path(clip.pretrained) if clip.pretrained else None
    return {
        "clip_model": clip.model,
        "clip_weights": file_digest(weights) if weights and weights.is_file() else clip.pretrained,
        "cache_manifest": file_digest(cache.manifest_path),
    }


def compute_split(
    backbone: Backbone, clip: ClipConfig, cache: FrameCache, out_dir: Path, batch_frames: int, device: torch.device
) -> int:
    """Embed every cached frame of one split into ``out_dir``; returns the number of frames
    (0 when ``out_dir`` already holds this stamp's embeddings)."""
    expected = stamp(clip, cache)
    manifest = out_dir / MANIFEST
    if manifest.is_file() and read_json(manifest, "").get("stamp") == expected:
        return 0
    model = backbone.model.to(device).eval()
    chunks, videos, row = [], {}, 0
    for vid in progress(cache.names, len(cache.names), f"features {cache.dir.name}", unit="video"):
        frames = normalize(cache.frames(vid), backbone.mean, backbone.std)
        with torch.no_grad():
            emb = torch.cat([model.encode_image(part.to(device)).float().cpu() for part in frames.split(batch_frames)])
        chunks.append(emb.to(torch.float16).numpy())
        videos[vid] = [row, len(emb)]
        row += len(emb)
    atomic_save_npy(out_dir / FEATURES, np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float16))
    atomic_write_json(manifest, {"stamp": expected, "videos": videos})
    return row


def compute(
    backbone: Backbone,
    clip: ClipConfig,
    layout: Layout,
    out: Path,
    batch_frames: int,
    device: torch.device,
    splits: Sequence[str] = SPLITS,
) -> dict[str, int]:
    """Every split's embeddings (``{split: frames embedded}``)."""
    return {
        split: compute_split(backbone, clip, FrameCache(layout.cache, split), out / split, batch_frames, device)
        for split in splits
    }


class FrameFeatures(SampledVideos):
    """Item i: ``num_frames`` frozen frame embeddings float32 [num_frames, D] of ``vid_names[i]``,
    sampled as :class:`propy.data.datasets.VideoClips` samples frames (segment centres at evaluation,
    a seeded draw per segment in training; call :meth:`set_epoch`)."""

    def __init__(
        self,
        folder: Path,
        clip: ClipConfig,
        cache: FrameCache,
        vid_names: Sequence[str],
        num_frames: int,
        train: bool,
        seed: int,
    ) -> None:
        manifest_path = folder / MANIFEST
        manifest = read_json(
            manifest_path, f"no frame embeddings (run `python -m propy features` for {cache.dir})", DataError
        )
        if manifest.get("stamp") != stamp(clip, cache):
            raise DataError(
                f"{manifest_path}: the frame embeddings come from another CLIP or frame cache "
                f"({manifest.get('stamp')}); re-run `python -m propy features`"
            )
        self.index = manifest["videos"]
        missing = [v for v in vid_names if v not in self.index]
        if missing:
            raise DataError(
                f"{manifest_path}: no embeddings of {len(missing)} videos, e.g. {missing[0]!r}; "
                "re-run `python -m propy features`"
            )
        super().__init__(vid_names, num_frames, train, seed)
        self.features = np.load(folder / FEATURES, mmap_mode="r")

    def __getitem__(self, i: int) -> torch.Tensor:
        first, count = self.index[self.vid_names[i]]
        return torch.from_numpy(self.features[first + self.sample(i, count)].astype(np.float32))
