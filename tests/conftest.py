"""Shared fixtures: a tiny synthetic benchmark with its frame cache, and params files for it.

Everything is real (mp4 from propy.data.synth, cache from propy.data.cache, a
random-init tiny open_clip from configs/propy-tiny.json) and small enough for
a test to train on in seconds. Extend by adding functions; keep these stable.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from propy.config import SPLITS, SplitSizes, SynthConfig, deep_merge
from propy.data.annotations import group_by_video, load_annotations
from propy.data.cache import extract_split
from propy.data.synth import generate

REPO = Path(__file__).resolve().parents[1]

TINY_SYNTH = SynthConfig(
    seed=1, videos=SplitSizes(train=8, val=4, test=4), size=32, fps=8,
    events_per_video=[5, 6], event_seconds=[0.5, 1.0],
)
TINY_SIZE = 32  # the input size of configs/propy-tiny.json
TINY_FPS = 8.0
TINY_MAX_FRAMES = 32


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory) -> Path:
    """A folder with ``synthetic/`` (8/4/4 videos) and ``cache/<split>/`` for every split."""
    root = tmp_path_factory.mktemp("tiny_bench")
    data = root / "synthetic"
    generate(TINY_SYNTH, data, progress=False)
    for split in SPLITS:
        names = list(group_by_video(load_annotations(data / "annotations" / f"{split}.jsonl")))
        extract_split(names, data / "videos", ".mp4", root / "cache" / split,
                      size=TINY_SIZE, fps=TINY_FPS, max_frames=TINY_MAX_FRAMES, progress=False)
    return root


def tiny_params_dict(bench: Path, overrides: dict | None = None) -> dict:
    """Raw params for ``bench``: random-init tiny CLIP, Nf = 4 (3 events), 2 epochs of 4 videos.

    Variants: ``tiny`` (ProPy) and ``zs_meanpool`` / ``zs_maxframe``; ``overrides`` merge onto the base blocks.
    """
    raw = {
        "dataset": "synthetic",
        "datasets": {"synthetic": {"root": str(bench / "synthetic"),
                                   "query_kinds": str(bench / "synthetic" / "query_kinds.json"),
                                   "rivals": str(bench / "synthetic" / "rivals.json")}},
        "synth": {"seed": TINY_SYNTH.seed, "size": TINY_SYNTH.size, "fps": TINY_SYNTH.fps,
                  "videos": {"train": 8, "val": 4, "test": 4},
                  "events_per_video": TINY_SYNTH.events_per_video, "event_seconds": TINY_SYNTH.event_seconds},
        "extract": {"root": str(bench / "cache"), "fps": TINY_FPS, "max_frames": TINY_MAX_FRAMES},
        "clip": {"model": str(REPO / "configs" / "propy-tiny.json"), "pretrained": ""},
        "pretrain_clip": {"enabled": False},
        "model": {"num_frames": 4, "pyramid": {"overlaps": [0, 1]}, "frame_prompts": 2, "adapter_width": 8,
                  "adapter_kernel": 3},
        "train": {"epochs": 2, "batch_videos": 4, "lr": 1.0e-3, "max_words": 16, "seed": 3},
        "eval": {"batch_videos": 4, "batch_queries": 16, "ks": [1, 2, 3, 4]},
        "variants": {"tiny": {}, "zs_meanpool": {"model": {"kind": "meanpool"}},
                     "zs_maxframe": {"model": {"kind": "maxframe"}}},
        "study": {"trained": ["tiny"], "zero_shot": ["zs_meanpool", "zs_maxframe"]},
        "report": {"headline": "tiny"},
    }
    return deep_merge(raw, overrides or {})


def write_tiny_params(bench: Path, path: Path, overrides: dict | None = None) -> Path:
    """Write :func:`tiny_params_dict` as a params.yaml at ``path``; returns ``path``."""
    path.write_text(yaml.safe_dump(tiny_params_dict(bench, overrides), sort_keys=False), encoding="utf-8")
    return path
