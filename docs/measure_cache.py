"""Bytes per video and sampling throughput of the frame cache, raw uint8 vs JPEG (docs/architecture.md).

No real video is available here, so a "video" is 128 frames of 224 px panned and zoomed across
matplotlib's bundled photograph (grace_hopper.jpg), with and without Gaussian noise (sigma 3, the
grain of broadcast video), and the synthetic benchmark's flat shapes for contrast. Throughput is
one process on one core (torch and PIL single-threaded): one training sample is Nf = 32 of the
video's frames, read with FrameCache.frames_at and normalised as VideoClips does.

    PYTHONPATH=. python docs/measure_cache.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

from propy.data.cache import FrameCache
from propy.data.frames import suffix, write_frames
from propy.data.video import normalize, sample_indices

T, S, NF = 128, 224, 32


def photo_video(noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    frames = []
    for t in range(T):
        side = int(300 + 150 * np.sin(t / 20))  # zoom
        left = int((photo.width - side) * (0.5 + 0.5 * np.sin(t / 13)))  # pan
        top = int((photo.height - side) * (0.5 + 0.5 * np.cos(t / 17)))
        frame = np.asarray(photo.crop((left, top, left + side, top + side)).resize((S, S), Image.BILINEAR), np.float32)
        frames.append(np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def synthetic_video() -> np.ndarray:
    from propy.data.synth import Event, Video, render

    video = Video("v", T, (Event("square", "yellow", "moves up", T),), ())
    return np.stack([np.asarray(Image.fromarray(f).resize((S, S), Image.NEAREST)) for f in render(video, 64)])


def measure(frames: np.ndarray, quality: int | None, root: Path, samples: int = 40) -> dict:
    split = root / str(quality)
    split.mkdir()
    write_frames(split / f"v{suffix(quality)}", frames, quality)
    (split / "manifest.json").write_text(
        json.dumps(
            {
                "size": S,
                "fps": 3.0,
                "videos": {"v": {"file": f"v{suffix(quality)}", "num_frames": T, "duration": T / 3}},
            }
        )
    )
    cache = FrameCache(root, str(quality))
    rng = np.random.default_rng(0)
    cache.frames_at("v", sample_indices(T, NF, True, rng))  # warm the page cache
    started = time.perf_counter()
    for _ in range(samples):
        picked = cache.frames_at("v", sample_indices(T, NF, True, rng))
        normalize(picked, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    seconds = time.perf_counter() - started
    error = float(np.abs(cache.frames("v").astype(int) - frames.astype(int)).mean())
    return {
        "MB_per_video": (split / f"v{suffix(quality)}").stat().st_size / 1e6,
        "frames_per_s_per_core": samples * NF / seconds,
        "mean_abs_error": error,
    }


def main() -> None:
    torch.set_num_threads(1)
    contents = {"photo": photo_video(0.0), "photo+noise3": photo_video(3.0), "synthetic": synthetic_video()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in contents.items():
            for quality in (None, 95, 90, 75):
                root = Path(tmp) / f"{name}-{quality}"
                root.mkdir()
                row = measure(frames, quality, root)
                print(
                    f"{name:<13} {('raw' if quality is None else f'jpeg q{quality}'):<9} "
                    f"{row['MB_per_video']:7.2f} MB/video  {row['frames_per_s_per_core']:7.0f} frames/s/core  "
                    f"mean |error| {row['mean_abs_error']:.2f}"
                )


if __name__ == "__main__":
    main()
