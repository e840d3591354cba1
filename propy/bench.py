"""``python -m propy bench``: training and evaluation throughput, peak memory, ProPy's cost over CLIP.

Every figure comes from the real code paths in one process: training steps are
``propy.train.Trainer`` steps on batches of the training split (frames loaded
beforehand, so the figure is compute only); gallery and query throughput are
``propy.encode`` on the validation split the trainer holds (cache reads
included, as in evaluation). The ProPy / CLIP ratio times ``encode_video`` and the frozen
CLIP's ``encode_image`` on the same frames, alternating, so both see the same
machine load. Weights need not be trained: timings do not depend on them.
"""
from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from propy.checkpoint import pick_device
from propy.config import Params, load_params
from propy.encode import encode_queries, encode_videos
from propy.errors import ConfigError
from propy.io import atomic_write_json
from propy.train import Process, Trainer, plan_batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (device work included)."""
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def train_steps_per_s(trainer: Trainer, steps: int) -> float:
    """Steps per second of ``steps`` training steps after one warm-up step."""
    proc = trainer.proc
    videos = trainer.epoch_batches(0)
    batches = [plan_batch(v, trainer.groups, proc) for v in itertools.islice(itertools.cycle(videos), steps + 1)]
    trainer.clips.set_epoch(0)
    frames = [torch.stack([trainer.clips[i] for i in batch.videos]) for batch in batches]
    trainer.model.train()
    trainer.train_step(batches[0], frames[0])
    elapsed = sum(_timed(lambda b=b, f=f: trainer.train_step(b, f), proc.device) for b, f in zip(batches[1:], frames[1:]))
    return steps / elapsed


def encode_ratio(model: torch.nn.Module, frames: torch.Tensor, repeats: int, device: torch.device) -> dict:
    """Median seconds of ProPy ``encode_video`` and CLIP ``encode_image`` on the same frames, alternating."""
    model.eval()
    flat = frames.flatten(0, 1)
    propy, clip = [], []
    with torch.no_grad():
        model.encode_video(frames)  # warm-up
        model.clip.encode_image(flat)
        for _ in range(repeats):
            propy.append(_timed(lambda: model.encode_video(frames), device))
            clip.append(_timed(lambda: model.clip.encode_image(flat), device))
    propy_s, clip_s = statistics.median(propy), statistics.median(clip)
    return {"propy_encode_s": propy_s, "clip_encode_s": clip_s, "propy_over_clip": propy_s / clip_s}


def peak_memory_mb(device: torch.device) -> dict:
    """Peak resident set size of this process and, on CUDA, peak allocated GPU memory (MiB)."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss = rss_kb / 2**20 if sys.platform == "darwin" else rss_kb / 2**10
    out = {"peak_rss_mb": rss}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def bench(params: Params, device: torch.device, steps: int, repeats: int) -> dict:
    """All figures of one run, as the JSON ``propy bench`` writes."""
    if params.model.kind != "propy":
        raise ConfigError(f"variant {params.variant!r}: bench times ProPy; pick a variant with model.kind propy")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:  # the trainer's checkpoint paths: nothing is saved there
        trainer = Trainer(params, Path(tmp), Path(tmp) / "log.json", Process(0, 1, device))
        steps_per_s = train_steps_per_s(trainer, steps)
    model, data, cfg = trainer.model, trainer.val, params.eval
    videos_s = _timed(lambda: encode_videos(model, data.clips, cfg.batch_videos, device), device)
    queries_s = _timed(lambda: encode_queries(model, data.tokens, cfg.batch_queries, device), device)
    count = min(cfg.batch_videos, len(data.clips))
    frames = torch.stack([data.clips[i] for i in range(count)]).to(device)
    return {
        "variant": params.variant,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_batch_videos": params.train.batch_videos,
        "train_steps_per_s": steps_per_s,
        "gallery_split": data.split,
        "gallery_videos": len(data.clips),
        "gallery_videos_per_s": len(data.clips) / videos_s,
        "queries": len(data.tokens),
        "queries_per_s": len(data.tokens) / queries_s,
        "encode_batch_videos": count,
        "num_frames": params.model.num_frames,
        **encode_ratio(model, frames, repeats, device),
        **peak_memory_mb(device),
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", default="full", help="variant of params.yaml to time (default: full)")
    parser.add_argument("--out", default="results/bench.json", help="JSON to write (default: results/bench.json)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default: 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed encodes per model (default: 5)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.repeats < 1:
        raise ConfigError("--steps and --repeats must be at least 1")
    params = load_params(args.params, args.variant)
    device = pick_device(args.device)
    result = bench(params, device, args.steps, args.repeats)
    atomic_write_json(args.out, result)
    print(
        f"bench {result['variant']} on {result['device']} ({result['threads']} threads): "
        f"train {result['train_steps_per_s']:.2f} steps/s (batch {result['train_batch_videos']} videos); "
        f"eval {result['gallery_videos_per_s']:.1f} videos/s, {result['queries_per_s']:.1f} queries/s; "
        f"ProPy encode_video / CLIP encode_image on {result['encode_batch_videos']} x {result['num_frames']} frames: "
        f"{result['propy_encode_s'] * 1e3:.1f} ms / {result['clip_encode_s'] * 1e3:.1f} ms = "
        f"{result['propy_over_clip']:.2f}x; peak RSS {result['peak_rss_mb']:.0f} MiB"
        + (f", peak CUDA {result['peak_cuda_mb']:.0f} MiB" if "peak_cuda_mb" in result else "")
        + f"; wrote {args.out}"
    )
    return 0
