"""Torch-side data over the frame cache: video clips, query tokens and the training batch plan.

Training batches are B videos with ALL their training queries, so the batch
plan is over videos; every random choice (the video order, the frame jitter)
is a pure function of (seed, epoch, index), which makes a run deterministic
and lets a resumed run redo exactly what an uninterrupted one would.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from propy.data.annotations import Record, group_by_video
from propy.data.cache import FrameCache
from propy.data.video import normalize, sample_indices
from propy.errors import DataError
from propy.model.backbone import tokenize


class SampledVideos(Dataset):
    """Item i: ``num_frames`` frames sampled from ``vid_names[i]``'s ``count`` (``sample``).

    With ``train=True`` a random frame inside each segment is drawn from an rng
    seeded by (seed, epoch, i); call :meth:`set_epoch` before each epoch.
    Evaluation takes the segment centres. Subclasses say what a frame is.
    """

    def __init__(self, vid_names: Sequence[str], num_frames: int, train: bool, seed: int) -> None:
        self.vid_names, self.num_frames, self.train, self.seed = list(vid_names), num_frames, train, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.vid_names)

    def sample(self, i: int, count: int) -> np.ndarray:
        """Indices into the ``count`` frames of video i (``propy.data.video.sample_indices``)."""
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        return sample_indices(count, self.num_frames, self.train, rng)


class VideoClips(SampledVideos):
    """Item i: ``num_frames`` normalised frames [Nf, 3, S, S] of ``vid_names[i]`` from the frame cache."""

    def __init__(
        self,
        cache: FrameCache,
        vid_names: Sequence[str],
        num_frames: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
        seed: int,
    ) -> None:
        super().__init__(vid_names, num_frames, train, seed)
        self.cache, self.mean, self.std = cache, tuple(mean), tuple(std)

    def __getitem__(self, i: int) -> torch.Tensor:
        vid = self.vid_names[i]
        return normalize(self.cache.frames_at(vid, self.sample(i, self.cache.num_frames(vid))), self.mean, self.std)


def query_tokens(records: Sequence[Record], tokenizer, max_words: int) -> torch.Tensor:
    """[N, max_words] token ids of the records' descriptions, in record order."""
    return tokenize(tokenizer, [r.desc for r in records], max_words)


@dataclass(frozen=True)
class QuerySet:
    """A split's queries grouped by video: ``records`` video by video, ``groups[v]`` indices of video v's."""

    vid_names: list[str]
    records: list[Record]
    groups: list[list[int]]


def cached_queries(records: Sequence[Record], cached: Iterable[str], where: str) -> QuerySet:
    """The videos (first appearance order) that are in the frame cache, with their queries.

    Records of a video missing from the cache (one that ``extract`` skipped) are
    left out with a warning; none left at all is a DataError naming ``where``.
    """
    cached = set(cached)
    groups = group_by_video(records)
    missing = [v for v in groups if v not in cached]
    if missing:
        warnings.warn(
            f"{where}: {len(missing)} video(s) are not in the frame cache; their queries are left out", stacklevel=2
        )
    kept = [v for v in groups if v in cached]
    if not kept:
        raise DataError(f"{where}: none of its videos is in the frame cache")
    bounds = np.cumsum([0] + [len(groups[v]) for v in kept]).tolist()
    return QuerySet(
        vid_names=kept,
        records=[r for v in kept for r in groups[v]],
        groups=[list(range(a, b)) for a, b in zip(bounds, bounds[1:])],
    )


def epoch_batches(
    num_videos: int,
    batch_videos: int,
    seed: int,
    epoch: int,
    together: Sequence[Sequence[int]] | None = None,
    setting: str = "",
) -> list[np.ndarray]:
    """Video indices of each batch of one epoch: shuffled by (seed, epoch), last incomplete batch dropped.

    ``together``: groups of video indices (e.g. a video and its rivals) that are
    shuffled as units and laid end to end before the cut into batches, so a group
    shares a batch unless it straddles a cut; videos in no group are units of one.
    A hard negative only teaches the contrastive loss when it is in the same batch.
    ``setting`` names the batch size in an error, with where it is set (``Params.where``).
    """
    if num_videos < batch_videos:
        where = f"; the value is {setting}" if setting else ""
        raise DataError(
            f"train.batch_videos is {batch_videos} but the training split has only {num_videos} videos{where}"
        )
    units: list[list[int]] = [list(g) for g in together or []]
    grouped = {v for g in units for v in g}
    units += [[v] for v in range(num_videos) if v not in grouped]
    shuffled = np.random.default_rng([seed, epoch]).permutation(len(units))
    order = np.array([v for u in shuffled for v in units[u]], dtype=np.int64)
    count = num_videos // batch_videos
    return [order[b * batch_videos : (b + 1) * batch_videos] for b in range(count)]


def rival_groups(records: Sequence[Record], vid_names: Sequence[str], rivals: dict[str, list[str]]) -> list[list[int]]:
    """Connected groups of gallery indices linked by ``rivals`` ({desc_id: [vid_name]}), for ``epoch_batches``."""
    index = {v: i for i, v in enumerate(vid_names)}
    parent = list(range(len(vid_names)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in records:
        for v in rivals.get(r.desc_id, []):
            if v in index and r.vid_name in index:
                parent[root(index[v])] = root(index[r.vid_name])
    groups: dict[int, list[int]] = {}
    for i in range(len(vid_names)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
