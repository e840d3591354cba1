"""``python -m propy bench``: measure throughput, memory and ProPy/CLIP encode ratios.

The work is done in ``propy.evaluation.bench``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from propy.config import add_layout_args, layout_from, load_params
from propy.errors import ConfigError
from propy.evaluation.bench import bench, search_bench
from propy.model.checkpoint import pick_device
from propy.runtime.files import atomic_write_json, atomic_write_text


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", default="full", help="variant of params.yaml to time (default: full)")
    add_layout_args(parser, required=False)  # needed except with --search
    parser.add_argument(
        "--out",
        help="JSON to write (default: logs/bench.json, with --search logs/bench_search.json; "
        "outside every pipeline stage's inputs)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default: 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed encodes per model (default: 5)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument(
        "--search",
        type=int,
        nargs="+",
        metavar="N",
        help="time `propy search` on synthetic indexes of N videos each (e.g. 1000 10000 100000)",
    )
    parser.add_argument("--events", type=int, default=19, help="--search: events per video (default: 19, `full`)")
    parser.add_argument("--dim", type=int, default=64, help="--search: embedding width (default: 64, the study's CLIP)")
    parser.add_argument("--queries", type=int, default=50, help="--search: timed queries per size (default: 50)")
    parser.add_argument(
        "--profile",
        choices=("tvr", "tiny"),
        help="time the paper's setting on a synthetic set of this shape made on the spot (tvr: "
        "76 s videos, 5 queries each, ViT-B/32, Nf 32; tiny: the same path on the tiny CLIP); "
        "needs no --data/--cache; writes --out (default logs/bench_<profile>.json) and --md",
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", metavar="B", help="--profile: training batch sizes (default: tvr 8 24 48)"
    )
    parser.add_argument("--amp-steps", type=int, help="--profile: steps of the AMP/fp32 comparison (default: tvr 20)")
    parser.add_argument("--workers", type=int, help="--profile: data loader workers (default: cores - 1)")
    parser.add_argument(
        "--work",
        type=Path,
        help="--profile: keep the synthetic set in this folder (reused when "
        "made with the same settings; default: a temporary folder)",
    )
    parser.add_argument("--md", type=Path, help="--profile: also write the tables as markdown here")


def run_search(args: argparse.Namespace) -> int:
    if min(args.search) < 1 or args.events < 1 or args.dim < 1 or args.queries < 1:
        raise ConfigError("--search sizes, --events, --dim and --queries must be at least 1")
    out = args.out or "logs/bench_search.json"
    result = search_bench(args.search, args.events, args.dim, args.queries)
    atomic_write_json(out, result)
    for row in result["sizes"]:
        print(
            f"search {row['videos']} videos x {args.events} events x {args.dim}: index {row['index_mb']:.1f} MiB, "
            f"load {row['load_s']:.2f} s (+{row['rss_added_mb']:.0f} MiB RSS), query {row['query_ms_median']:.1f} ms "
            f"median, {row['query_ms_p95']:.1f} ms p95"
        )
    print(f"wrote {out}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    from propy.evaluation import gpu_bench

    profile = gpu_bench.PROFILES[args.profile]
    changes = {
        "batch_sizes": tuple(args.batch_sizes or profile.batch_sizes),
        "amp_steps": profile.amp_steps if args.amp_steps is None else args.amp_steps,
    }
    workers = gpu_bench.default_workers() if args.workers is None else args.workers
    if min(changes["batch_sizes"]) < 1 or changes["amp_steps"] < 1 or workers < 0 or args.repeats < 1:
        raise ConfigError("--batch-sizes, --amp-steps and --repeats must be at least 1, --workers at least 0")
    result = gpu_bench.run_profile(
        args.params, dataclasses.replace(profile, **changes), pick_device(args.device), args.work, workers, args.repeats
    )
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
        raise ConfigError(
            "--data and --cache are needed to time training and encoding (e.g. --data data/synthetic "
            "--cache data/cache)"
        )
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
