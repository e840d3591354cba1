"""``python -m propy bench``: training and evaluation throughput, peak memory, ProPy's cost over CLIP.

Every figure comes from the real code paths in one process: training steps are
``propy.train.Trainer`` steps on batches of the training split (frames loaded
beforehand, so the figure is compute only); gallery and query throughput are
``propy.encode`` on the validation split the trainer holds (cache reads
included, as in evaluation). The ProPy / CLIP ratio times ``encode_video`` and the frozen
CLIP's ``encode_image`` on the same frames, alternating, so both see the same
machine load. Weights need not be trained: timings do not depend on them.

``--search N ...`` times ``propy search`` instead, on indexes of N videos of synthetic unit
event embeddings written with the real index store (search cost depends on sizes only): index
size on disk, load time, resident memory the load adds, and per-query latency of
``Gallery.search`` (one product over all events, top-k, moments; text encoding not included).
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from propy.checkpoint import pick_device
from propy.config import Layout, Params, add_layout_args, layout_from, load_params
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


def bench(params: Params, layout: Layout, device: torch.device, steps: int, repeats: int) -> dict:
    """All figures of one run, as the JSON ``propy bench`` writes."""
    if params.model.kind != "propy":
        raise ConfigError(f"variant {params.variant!r}: bench times ProPy; pick a variant with model.kind propy")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:  # the trainer's checkpoint paths: nothing is saved there
        trainer = Trainer(params, layout, 0, Path(tmp), Path(tmp) / "log.json", Process(0, 1, device))
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


def _rss_mb() -> float:
    """Current resident set size (MiB), from /proc on Linux; elsewhere the peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_memory_mb(torch.device("cpu"))["peak_rss_mb"]


def synthetic_index(folder: Path, videos: int, events: int, dim: int, seed: int = 0) -> None:
    """An index of ``videos`` x ``events`` random unit embeddings, written in chunks (flat memory)."""
    import numpy as np

    from propy.index_store import IndexStore

    rng = np.random.default_rng(seed)
    durations = rng.uniform(10.0, 600.0, size=videos)
    manifest = {
        "fingerprint": {"synthetic": True}, "build": {"params": None, "variant": "synthetic", "checkpoint": None},
        "root": str(folder / "videos"), "num_events": events, "dim": dim,
        "proposals": [[i / events, (i + 1) / events] for i in range(events)],
        "videos": [{"path": f"{v:07d}.mp4", "size": 1, "mtime_ns": 0, "duration": float(d)}
                   for v, d in enumerate(durations)],
        "skipped": [],
    }

    def fill(out) -> None:
        for start in range(0, videos, 10_000):
            chunk = rng.standard_normal((min(10_000, videos - start), events, dim), dtype=np.float32)
            out[start:start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=-1, keepdims=True)

    IndexStore(folder).commit(manifest, (videos, events, dim), fill)


def search_bench(sizes: list[int], events: int, dim: int, queries: int, k: int = 10) -> dict:
    """Per gallery size: index bytes on disk, load seconds, RSS the load adds, query latency."""
    import numpy as np

    from propy.search import open_index

    rng = np.random.default_rng(1)
    results = []
    for videos in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "index"
            synthetic_index(folder, videos, events, dim)
            disk = sum(f.stat().st_size for f in folder.iterdir())
            before = _rss_mb()
            started = time.perf_counter()
            index = open_index(folder, with_model=False)
            load_s = time.perf_counter() - started
            added = _rss_mb() - before
            vectors = rng.standard_normal((queries + 3, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for q in vectors[:3]:  # warm-up
                index.gallery.search(q, k)
            times = []
            for q in vectors[3:]:
                started = time.perf_counter()
                index.gallery.search(q, k)
                times.append(time.perf_counter() - started)
            del index
        results.append({
            "videos": videos, "events": videos * events, "index_mb": disk / 2**20, "load_s": load_s,
            "rss_added_mb": added, "query_ms_median": 1e3 * statistics.median(times),
            "query_ms_p95": 1e3 * float(np.percentile(times, 95)), "query_ms_min": 1e3 * min(times),
        })
    return {"events_per_video": events, "dim": dim, "k": k, "queries": queries, "threads": torch.get_num_threads(),
            "sizes": results, **peak_memory_mb(torch.device("cpu"))}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", default="full", help="variant of params.yaml to time (default: full)")
    add_layout_args(parser, required=False)  # needed except with --search
    parser.add_argument("--out", help="JSON to write (default: logs/bench.json, with --search logs/bench_search.json; "
                                      "outside every pipeline stage's inputs)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default: 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed encodes per model (default: 5)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--search", type=int, nargs="+", metavar="N",
                        help="time `propy search` on synthetic indexes of N videos each (e.g. 1000 10000 100000)")
    parser.add_argument("--events", type=int, default=19, help="--search: events per video (default: 19, `full`)")
    parser.add_argument("--dim", type=int, default=64, help="--search: embedding width (default: 64, the study's CLIP)")
    parser.add_argument("--queries", type=int, default=50, help="--search: timed queries per size (default: 50)")
    parser.add_argument("--profile", choices=("tvr", "tiny"),
                        help="time the paper's setting on a synthetic set of this shape made on the spot (tvr: "
                             "76 s videos, 5 queries each, ViT-B/32, Nf 32; tiny: the same path on the tiny CLIP); "
                             "needs no --data/--cache; writes --out (default logs/bench_<profile>.json) and --md")
    parser.add_argument("--batch-sizes", type=int, nargs="+", metavar="B",
                        help="--profile: training batch sizes (default: tvr 8 24 48)")
    parser.add_argument("--amp-steps", type=int, help="--profile: steps of the AMP/fp32 comparison (default: tvr 20)")
    parser.add_argument("--workers", type=int, help="--profile: data loader workers (default: cores - 1)")
    parser.add_argument("--work", type=Path, help="--profile: keep the synthetic set in this folder (reused when "
                                                  "made with the same settings; default: a temporary folder)")
    parser.add_argument("--md", type=Path, help="--profile: also write the tables as markdown here")


def run_search(args: argparse.Namespace) -> int:
    if min(args.search) < 1 or args.events < 1 or args.dim < 1 or args.queries < 1:
        raise ConfigError("--search sizes, --events, --dim and --queries must be at least 1")
    out = args.out or "logs/bench_search.json"
    result = search_bench(args.search, args.events, args.dim, args.queries)
    atomic_write_json(out, result)
    for row in result["sizes"]:
        print(f"search {row['videos']} videos x {args.events} events x {args.dim}: index {row['index_mb']:.1f} MiB, "
              f"load {row['load_s']:.2f} s (+{row['rss_added_mb']:.0f} MiB RSS), query {row['query_ms_median']:.1f} ms "
              f"median, {row['query_ms_p95']:.1f} ms p95")
    print(f"wrote {out}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    import dataclasses

    from propy.evaluation import gpu_bench
    from propy.io import atomic_write_text

    profile = gpu_bench.PROFILES[args.profile]
    changes = {"batch_sizes": tuple(args.batch_sizes or profile.batch_sizes),
               "amp_steps": profile.amp_steps if args.amp_steps is None else args.amp_steps}
    workers = gpu_bench.default_workers() if args.workers is None else args.workers
    if min(changes["batch_sizes"]) < 1 or changes["amp_steps"] < 1 or workers < 0 or args.repeats < 1:
        raise ConfigError("--batch-sizes, --amp-steps and --repeats must be at least 1, --workers at least 0")
    result = gpu_bench.run_profile(args.params, dataclasses.replace(profile, **changes), pick_device(args.device),
                                   args.work, workers, args.repeats)
    out = args.out or f"logs/bench_{args.profile}.json"
    atomic_write_json(out, result)
    if args.md:
        atomic_write_text(args.md, gpu_bench.markdown(result))
    print(f"wrote {out}" + (f" and {args.md}" if args.md else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.search:
        return run_search(args)
    if args.profile:
        return run_profile(args)
    if args.steps < 1 or args.repeats < 1:
        raise ConfigError("--steps and --repeats must be at least 1")
    if args.data is None or args.cache is None:
        raise ConfigError("--data and --cache are needed to time training and encoding (e.g. --data data/synthetic "
                          "--cache data/cache)")
    params = load_params(args.params, args.variant)
    device = pick_device(args.device)
    result = bench(params, layout_from(args), device, args.steps, args.repeats)
    args.out = args.out or "logs/bench.json"
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
