"""A TVR-shaped dataset written the way a user gets one: release-format annotation files, mp4s of other
sizes and frame rates than the synthetic ones, and OpenAI-format CLIP weights, under a repo-like root.

The CLIP is the tiny config with QuickGELU (as ViT-B-32-quickgelu is to ViT-B-32), so a real-path
run takes seconds; ``params`` keeps presets.paper and overrides only what makes it small.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from conftest import REPO, write_openai_archive

from propy.data.synth import write_mp4
from propy.model.backbone import create_clip

# name: (width, height, fps, seconds); train videos first, then the test ones
VIDEOS = {
    "friends_s01e01_seg02_clip_00": (48, 36, 10, 4.0),
    "friends_s01e01_seg02_clip_01": (64, 40, 6, 3.0),
    "bbt_s02e03_seg01_clip_05": (36, 48, 12, 3.5),
    "bbt_s02e03_seg01_clip_06": (50, 30, 5, 4.0),
    "house_s03e04_seg02_clip_10": (40, 40, 8, 3.0),
    "castle_s01e02_seg01_clip_01": (48, 36, 10, 3.0),
    "castle_s01e02_seg01_clip_02": (64, 40, 6, 4.0),
}
TRAIN, TEST = list(VIDEOS)[:5], list(VIDEOS)[5:]
WORDS = ["Sheldon", "Penny", "House", "Castle", "Rachel", "sits", "waves", "laughs", "runs", "reads", "a", "book"]


def _video(name: str, seed: int) -> np.ndarray:
    width, height, fps, seconds = VIDEOS[name]
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = [np.roll(base, shift=t * 2, axis=1) for t in range(round(fps * seconds))]
    return np.stack(frames)


def _release_line(desc_id: int, vid: str, rng: np.random.Generator, with_ts: bool) -> dict:
    duration = VIDEOS[vid][3]
    start = float(rng.uniform(0, duration / 2))
    line = {
        "desc_id": desc_id,
        "desc": " ".join(rng.choice(WORDS, 4)),
        "vid_name": vid,
        "duration": duration,
        "type": "v",
    }
    if with_ts:
        line["ts"] = [round(start, 2), round(start + duration / 3, 2)]
    return line


def write_dataset(root: Path) -> dict[str, Path]:
    """``root/release/{tvr_train_release,tvr_test_public_release}.jsonl`` (the test file without ``ts``, as
    TVR's test-public), ``root/data/tvr/videos/*.mp4`` and ``root/weights/ViT-B-32.pt`` (a TorchScript
    archive of a QuickGELU tiny CLIP). Returns the paths by role."""
    rng = np.random.default_rng(0)
    release = root / "release"
    release.mkdir(parents=True, exist_ok=True)
    train = [_release_line(i, vid, rng, True) for i, vid in enumerate(v for v in TRAIN for _ in range(3))]
    test = [_release_line(100 + i, vid, rng, False) for i, vid in enumerate(v for v in TEST for _ in range(2))]
    paths = {
        "train_release": release / "tvr_train_release.jsonl",
        "test_release": release / "tvr_test_public_release.jsonl",
    }
    paths["train_release"].write_text("".join(json.dumps(x) + "\n" for x in train))
    paths["test_release"].write_text("".join(json.dumps(x) + "\n" for x in test))
    videos = root / "data" / "tvr" / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(VIDEOS):
        write_mp4(videos / f"{name}.mp4", _video(name, i), VIDEOS[name][2], "libx264")
    config = root / "configs" / "tiny-quickgelu.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps({**json.loads((REPO / "configs" / "propy-tiny.json").read_text()), "quick_gelu": True})
    )
    torch.manual_seed(0)
    state = create_clip(str(config)).state_dict()
    (root / "weights").mkdir(exist_ok=True)
    paths.update(
        config=config, archive=write_openai_archive(state, root / "weights" / "ViT-B-32.pt"), plain=root / "plain.pt"
    )
    torch.save(state, paths["plain"])
    return paths


def prepare(repo: Path) -> dict[str, Path]:
    """:func:`write_dataset` in ``repo``, then the README's real-data steps: ``convert`` the releases and
    ``split-val`` one training video off, into ``repo/data/tvr/annotations/``."""
    from propy.cli import main

    paths = write_dataset(repo)
    tvr = repo / "data" / "tvr"
    ann = tvr / "annotations"
    assert main(["convert", "tvr", str(paths["train_release"]), str(tvr / "tvr_train.jsonl")]) == 0
    assert main(["convert", "tvr", str(paths["test_release"]), str(ann / "test.jsonl"), "--missing-ts", "whole"]) == 0
    split = ["--videos", "1", "--out-train", str(ann / "train.jsonl"), "--out-val", str(ann / "val.jsonl")]
    assert main(["split-val", str(tvr / "tvr_train.jsonl"), *split]) == 0
    return paths


def params(config: Path, small_batch: bool = True) -> dict:
    """The repo's params.yaml on ``dataset: tvr``: presets.paper, with TVR's overrides extended to make
    the run tiny. ``small_batch=False`` leaves the preset's 24 videos per batch (more than the data has)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["dataset"] = "tvr"
    overrides = copy.deepcopy(raw["datasets"]["tvr"]["overrides"])
    overrides["clip"] = {"model": str(config)}  # weights: presets.paper's weights/ViT-B-32.pt
    overrides["extract"] = {"fps": 2.0, "max_frames": 8}
    overrides["model"] = {
        "num_frames": 4,
        "pyramid": [0, 1],
        "frame_prompts": 2,
        "adapter_width": 8,
        "adapter_kernel": 3,
        "msl": {"frames": 8, "slots": 4, "hidden": 16, "heads": 2},
    }
    overrides["train"].update(epochs=1, max_words=16, **({"batch_videos": 4} if small_batch else {}))
    overrides["eval"] = {"batch_videos": 4, "batch_queries": 16}
    raw["datasets"]["tvr"]["overrides"] = overrides
    raw["variants"] = {
        "full": {},
        "zs_meanpool": {"model": {"kind": "meanpool"}},  # deeper ones need Nf > 4
        "msl": raw["variants"]["msl"],
    }
    # MS-SL's published training (presets.paper.variants.msl) shrunk to the tiny data; its lr stays
    shrunk = raw["presets"]["paper"]["variants"]["msl"]
    shrunk["train"].update(epochs=1, **({"batch_videos": 4} if small_batch else {}))
    raw["study"] = {
        "trained": ["full", "msl"],
        "seeds": [42],
        "zero_shot": ["zs_meanpool"],
        "ablations": {"components": ["full"]},
    }
    raw["claims"]["tests"] = {
        "vs_meanpool": {
            "claim": "ProPy beats mean-pooled CLIP",
            "variant": "full",
            "against": "zs_meanpool",
            "kind": "all",
            "metric": "SumR",
        }
    }
    raw["sweep"]["variant"] = "full"
    raw["report"]["headline"] = "full"
    return raw
