"""Training and evaluation throughput, peak memory, ProPy's cost over CLIP.

Every figure comes from the real code paths in one process: training steps are
``propy.train.trainer.Trainer`` steps on batches of the training split (frames loaded
beforehand, so the figure is compute only); gallery and query throughput are
``propy.evaluation.encode`` on the validation split the trainer holds (cache reads
included, as in evaluation). The ProPy / CLIP ratio times ``encode_video`` and the frozen
CLIP's ``encode_image`` on the same frames, alternating, so both see the same
machine load. Weights need not be trained: timings do not depend on them.

``--search N ...`` times ``propy search`` instead, on indexes of N videos of synthetic unit
event embeddings written with the real index store (search cost depends on sizes only): index
size on disk, load time, resident memory the load adds, and per-query latency of
``Gallery.search`` (one product over all events, top-k, moments; text encoding not included).
"""

from __future__ import annotations

import itertools
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from propy.config import Layout, Params
from propy.errors import ConfigError
from propy.evaluation.cost import encode_timings
from propy.evaluation.encode import encode_queries, encode_videos
from propy.evaluation.timing import measure
from propy.train.trainer import Process, Trainer, plan_batch


def train_steps_per_s(trainer: Trainer, steps: int) -> float:
    """Steps per second of ``steps`` training steps after one warm-up step."""
    proc = trainer.proc
    videos = trainer.epoch_batches(0)
    batches = [plan_batch(v, trainer.groups, proc) for v in itertools.islice(itertools.cycle(videos), steps + 1)]
    trainer.clips.set_epoch(0)
    frames = [torch.stack([trainer.clips[i] for i in batch.videos]) for batch in batches]
    trainer.model.train()
    trainer.train_step(batches[0], frames[0])
    elapsed = sum(
        measure(lambda b=b, f=f: trainer.train_step(b, f), proc.device)[0] for b, f in zip(batches[1:], frames[1:])
    )
    return steps / elapsed


def encode_ratio(model: torch.nn.Module, frames: torch.Tensor, repeats: int, device: torch.device) -> dict:
    """Median seconds of the variant's ``encode_video`` and CLIP's ``encode_image`` on the same frames."""
    model.eval()
    timed = encode_timings(model, frames, repeats, device)
    propy_s, clip_s = timed["propy"].wall, timed["clip"].wall
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
    videos_s, _ = measure(lambda: encode_videos(model, data.clips, cfg.batch_videos, device), device)
    queries_s, _ = measure(lambda: encode_queries(model, data.tokens, cfg.batch_queries, device), device)
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

    from propy.search.store import IndexStore

    rng = np.random.default_rng(seed)
    durations = rng.uniform(10.0, 600.0, size=videos)
    manifest = {
        "fingerprint": {"synthetic": True},
        "build": {"params": None, "variant": "synthetic", "checkpoint": None},
        "root": str(folder / "videos"),
        "num_events": events,
        "dim": dim,
        "proposals": [[i / events, (i + 1) / events] for i in range(events)],
        "videos": [
            {"path": f"{v:07d}.mp4", "size": 1, "mtime_ns": 0, "duration": float(d)} for v, d in enumerate(durations)
        ],
        "skipped": [],
    }

    def fill(out) -> None:
        for start in range(0, videos, 10_000):
            chunk = rng.standard_normal((min(10_000, videos - start), events, dim), dtype=np.float32)
            out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=-1, keepdims=True)

    IndexStore(folder).commit(manifest, (videos, events, dim), fill)


def search_bench(sizes: list[int], events: int, dim: int, queries: int, k: int = 10) -> dict:
    """Per gallery size: index bytes on disk, load seconds, RSS the load adds, query latency."""
    import numpy as np

    from propy.search.engine import open_index

    rng = np.random.default_rng(1)
    results, opened = [], []
    for videos in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "index"
            synthetic_index(folder, videos, events, dim)
            disk = sum(f.stat().st_size for f in folder.iterdir())
            before = _rss_mb()
            load_s, _ = measure(lambda folder=folder: opened.append(open_index(folder, with_model=False)))
            index = opened.pop()
            added = _rss_mb() - before
            vectors = rng.standard_normal((queries + 3, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for q in vectors[:3]:  # warm-up
                index.gallery.search(q, k)
            times = [measure(lambda q=q, g=index.gallery: g.search(q, k))[0] for q in vectors[3:]]
            del index
        results.append(
            {
                "videos": videos,
                "events": videos * events,
                "index_mb": disk / 2**20,
                "load_s": load_s,
                "rss_added_mb": added,
                "query_ms_median": 1e3 * statistics.median(times),
                "query_ms_p95": 1e3 * float(np.percentile(times, 95)),
                "query_ms_min": 1e3 * min(times),
            }
        )
    return {
        "events_per_video": events,
        "dim": dim,
        "k": k,
        "queries": queries,
        "threads": torch.get_num_threads(),
        "sizes": results,
        **peak_memory_mb(torch.device("cpu")),
    }
