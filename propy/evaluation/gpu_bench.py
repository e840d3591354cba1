"""``propy bench --profile tvr``: the paper's setting at TVR's shape, measured on one device.

No real dataset is needed and nothing is downloaded: a synthetic set shaped like TVR
(videos of about 76 s, several queries per video) is written as real mp4 files with
``propy.data.synth``'s videos and frame-state captions as the queries, and cached with the paper
preset's ``extract`` settings (3 fps, at most
128 JPEG frames at the CLIP's input size), so training reads and decodes frames exactly as it
would on TVR. The model is the paper preset's (ViT-B/32 with random weights: timings do not
depend on weights, and the OpenAI file need not be present).

Per batch size, one epoch of ``Trainer.train_step`` fed by the trainer's own data loader
(``train.num_workers`` workers, pinned memory; AMP on CUDA): videos/s, frames/s, the share of
the epoch spent waiting for the loader, and peak GPU memory. The first step (kernel selection,
allocator growth) and the loader's start-up are kept out of the rates and reported apart.
Evaluation: ``propy.evaluation.encode`` over the validation gallery and queries (the real path, cache
reads included) and ``encode_video`` alone on frames already on the device. AMP agreement:
an AMP trainer and an fp32 trainer built from the same seed take the same batches for N steps;
the relative loss difference and the cosine of their gradients say whether AMP trains the
same model (the target: loss within 1e-3 after 20 steps). On CPU, AMP means bf16 autocast.

The ``tiny`` profile is the same procedure on the tiny CLIP and a few short videos, so the
whole path is tested on the CPU in seconds.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from propy.config import (
    Layout,
    Params,
    SplitSizes,
    SynthConfig,
    deep_merge,
    read_params,
    resolve,
)
from propy.data.annotations import Record, group_by_video, write_annotations
from propy.data.extraction import extract_split
from propy.errors import ConfigError
from propy.evaluation.encode import encode_queries, encode_videos
from propy.model.configs import model_input_size
from propy.runtime.environment import usable_cores
from propy.runtime.files import atomic_write_json, read_json
from propy.train.trainer import Process, Trainer, plan_batch

REPO = Path(__file__).resolve().parents[2]
BENCH_VARIANT = "_gpu_bench"  # the variant the bench adds to params.yaml's (in memory only)
AMP_TARGET = 1e-3  # relative loss difference of AMP and fp32 after the agreement steps
SPLIT_SIZES = ("train", "val")


@dataclass(frozen=True)
class Profile:
    """The synthetic set's shape and what the bench changes in the paper preset (as a variant)."""

    name: str
    train_videos: int
    val_videos: int
    seconds: float  # length of each video
    queries_per_video: int
    size: int  # side of the synthetic mp4's frames (the cache resizes them to the CLIP's input)
    batch_sizes: tuple[int, ...]
    amp_batch: int
    amp_steps: int
    overrides: dict = field(default_factory=dict)


PROFILES = {
    # TVR: 76 s on average, 5 queries per video; 3 steps of 48 videos at the largest batch.
    "tvr": Profile(
        "tvr",
        train_videos=144,
        val_videos=48,
        seconds=76.0,
        queries_per_video=5,
        size=224,
        batch_sizes=(8, 24, 48),
        amp_batch=24,
        amp_steps=20,
    ),
    # The same path on the tiny CLIP (configs/propy-tiny.json): a CPU test in seconds.
    "tiny": Profile(
        "tiny",
        train_videos=8,
        val_videos=4,
        seconds=8.0,
        queries_per_video=3,
        size=32,
        batch_sizes=(2, 4),
        amp_batch=4,
        amp_steps=2,
        overrides={
            "clip": {"model": str(REPO / "configs" / "propy-tiny.json")},
            "model": {
                "num_frames": 4,
                "pyramid": [0, 1],
                "frame_prompts": 2,
                "adapter_width": 8,
                "adapter_kernel": 3,
                "event_prompt_init": "cls",
            },
            "train": {"max_words": 16},
            "eval": {"batch_videos": 4, "batch_queries": 16},
        },
    ),
}


def bench_params(raw: dict, profile: Profile, batch: int, amp: bool, workers: int, source: str) -> Params:
    """``raw``'s TVR setting (the paper preset and TVR's overrides) with random CLIP weights and the
    profile's changes, as one more variant; the file itself is not touched."""
    variant = deep_merge(
        profile.overrides,
        {"clip": {"pretrained": ""}, "train": {"batch_videos": batch, "amp": amp, "num_workers": workers}},
    )
    if "tvr" not in (raw.get("datasets") or {}):
        raise ConfigError(f"{source}: datasets.tvr is missing; the bench times the TVR setting (presets.paper)")
    return resolve(deep_merge(raw, {"dataset": "tvr", "variants": {BENCH_VARIANT: variant}}), BENCH_VARIANT, source)


# --------------------------------------------------------------------------- the synthetic set


def synth_config(profile: Profile, fps: int) -> SynthConfig:
    """Events of about 4 s back to back (at least 5, synth's minimum) fill ``profile.seconds``."""
    events = max(5, round(profile.seconds / 4.0))
    mean = profile.seconds / events
    return SynthConfig(
        seed=0,
        videos=SplitSizes(train=profile.train_videos, val=profile.val_videos, test=2),
        size=profile.size,
        fps=fps,
        events_per_video=[events, events],
        event_seconds=[0.8 * mean, 1.2 * mean],
        kind_mix={"appearance": 1.0, "order": 1.0, "composition": 1.0, "context": 1.0},
        composition_events=[2, 3],
        kinds_per_pair=1,
    )


def caption_queries(captions: list[dict], split: str, per_video: int) -> list[Record]:
    """``per_video`` queries for each video of ``split``: its frame-state captions at evenly spaced
    positions of its caption list, so the moments spread over the video as TVR's do."""
    by_video: dict[str, list[dict]] = {}
    for caption in captions:
        if caption["split"] == split:
            by_video.setdefault(caption["vid_name"], []).append(caption)
    records = []
    for vid, rows in by_video.items():
        duration = max(row["end"] for row in rows)
        picks = np.linspace(0, len(rows) - 1, num=min(per_video, len(rows))).round().astype(int)
        records += [
            Record(vid, f"{vid}#q{j}", rows[i]["caption"], duration, (rows[i]["start"], rows[i]["end"]))
            for j, i in enumerate(picks)
        ]
    return records


def _write_video(job: tuple) -> None:
    from propy.data.synth import render, write_mp4

    path, video, size, fps, codec = job
    write_mp4(path, render(video, size), fps, codec)


def make_set(profile: Profile, params: Params, work: Path, workers: int) -> Layout:
    """The profile's train and val videos (``propy.data.synth``'s videos, rendered by ``workers``
    processes) in ``work/synthetic``, their caption queries, and their frame cache in
    ``work/cache`` made with ``params.extract``; kept and reused when ``work`` holds a set of the
    same settings."""
    from concurrent.futures import ProcessPoolExecutor

    from propy.data.synth import captions, pick_codec, sample_split

    for split in SPLIT_SIZES:
        if getattr(profile, f"{split}_videos") % 2:
            raise ConfigError(f"profile {profile.name}: {split}_videos must be even (synthetic videos come in pairs)")
    layout = Layout(work / "synthetic", work / "cache")
    fps = max(1, round(params.extract.fps))
    cfg = synth_config(profile, fps)
    size = model_input_size(params)
    settings = {
        "synth": asdict(cfg),
        "queries_per_video": profile.queries_per_video,
        "cache_size": size,
        "extract": asdict(params.extract),
    }
    stamp = work / "bench_set.json"
    if stamp.is_file() and read_json(stamp, "") == settings:
        return layout
    stamp.unlink(missing_ok=True)
    plan = {split: sample_split(cfg, split) for split in SPLIT_SIZES}
    codec = pick_codec()
    layout.videos.mkdir(parents=True, exist_ok=True)
    jobs = [(layout.videos / f"{v.name}.mp4", v, profile.size, fps, codec) for videos in plan.values() for v in videos]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_video, jobs))
    else:
        for job in jobs:
            _write_video(job)
    ext = params.extract
    for split, videos in plan.items():
        rows = [row for v in videos for row in captions(v, fps, split)]
        records = caption_queries(rows, split, profile.queries_per_video)
        write_annotations(layout.annotations(split), records)
        durations = {vid: group[0].duration for vid, group in group_by_video(records).items()}
        extract_split(
            list(durations),
            layout.videos,
            ".mp4",
            layout.cache_split(split),
            size=size,
            fps=ext.fps,
            max_frames=ext.max_frames,
            jpeg_quality=ext.jpeg_quality,
            durations=durations,
            duration_tolerance=ext.duration_tolerance,
            desc=f"extract {split}",
            progress=False,
        )
    atomic_write_json(stamp, settings)
    return layout


# --------------------------------------------------------------------------- measurements


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_epoch(trainer: Trainer) -> dict:
    """One epoch (the trainer's batches of epoch 0) after one warm-up step on its first batch.

    ``train_step`` ends with ``loss.item()``, so each step's time includes its device work. Rates
    and the loader's wait share count the steps after the first; the first batch's wait (the
    workers' start-up) is reported apart, and ``epoch_videos_per_s`` counts the whole epoch (what a
    training run that restarts its loader each epoch sees).
    """
    proc = trainer.proc
    batches = [plan_batch(videos, trainer.groups, proc) for videos in trainer.epoch_batches(0)]
    trainer.model.train()
    trainer.clips.set_epoch(0)
    trainer.train_step(batches[0], torch.stack([trainer.clips[i] for i in batches[0].videos]))  # warm-up
    loader = iter(trainer.loader(batches, 0))
    waits, steps, losses = [], [], []
    for batch in batches:
        started = time.perf_counter()
        frames = next(loader)
        waited = time.perf_counter() - started
        losses.append(trainer.train_step(batch, frames))
        waits.append(waited)
        steps.append(time.perf_counter() - started)
    videos = sum(len(b.videos) for b in batches[1:])
    elapsed = sum(steps[1:])
    return {
        "epoch_videos_per_s": (videos + len(batches[0].videos)) / sum(steps),
        "batch_videos": trainer.cfg.batch_videos,
        "steps": len(batches),
        "timed_steps": len(batches) - 1,
        "step_s": elapsed / (len(batches) - 1),
        "videos_per_s": videos / elapsed,
        "frames_per_s": videos * trainer.params.model.num_frames / elapsed,
        "data_wait_share": sum(waits[1:]) / elapsed,
        "first_batch_wait_s": waits[0],
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def eval_throughput(trainer: Trainer, repeats: int) -> dict:
    """Validation gallery and queries through ``propy.evaluation.encode`` (cache reads included), and
    ``encode_video`` alone on one evaluation batch already on the device (fp32, as evaluation runs)."""
    from propy.evaluation.bench import encode_ratio
    from propy.evaluation.timing import measure

    model, data, device, cfg = trainer.model, trainer.val, trainer.proc.device, trainer.params.eval
    videos_s, _ = measure(lambda: encode_videos(model, data.clips, cfg.batch_videos, device), device)
    queries_s, _ = measure(lambda: encode_queries(model, data.tokens, cfg.batch_queries, device), device)
    count = min(cfg.batch_videos, len(data.clips))
    frames = torch.stack([data.clips[i] for i in range(count)]).to(device)
    ratio = encode_ratio(model, frames, repeats, device)
    return {
        "gallery_videos": len(data.clips),
        "gallery_videos_per_s": len(data.clips) / videos_s,
        "queries": len(data.tokens),
        "queries_per_s": len(data.tokens) / queries_s,
        "compute_batch_videos": count,
        "compute_videos_per_s": count / ratio["propy_encode_s"],
        "propy_over_clip": ratio["propy_over_clip"],
    }


def _gradient(trainer: Trainer) -> torch.Tensor:
    """The trainable tensors' gradients of the last step, flattened (zeros where a tensor got none)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().float() for p in trainer.trainable]
    )


def _compare(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Cosine and relative L2 distance of gradient ``a`` to reference ``b``."""
    norm = float(b.norm())
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0)) if norm > 0 else float("nan")
    return {"cosine": cosine, "relative_l2": float((a - b).norm()) / norm if norm > 0 else float("nan")}


def amp_agreement(amp: Trainer, fp32: Trainer, steps: int) -> dict:
    """The two trainers (same seed, so the same initial weights) take the same ``steps`` batches
    (the loader of ``amp``, epochs in turn); per-step losses and the gradients of the first and last step."""
    losses: list[tuple[float, float]] = []
    grads: dict[str, dict] = {}
    amp.model.train()
    fp32.model.train()
    epoch = 0
    while len(losses) < steps:
        batches = [plan_batch(v, amp.groups, amp.proc) for v in amp.epoch_batches(epoch)]
        for batch, frames in zip(batches, amp.loader(batches, epoch)):
            losses.append((amp.train_step(batch, frames), fp32.train_step(batch, frames)))
            if len(losses) in (1, steps):
                grads["first" if len(losses) == 1 else "last"] = _compare(_gradient(amp), _gradient(fp32))
            if len(losses) == steps:
                break
        epoch += 1
    relative = [abs(a - f) / abs(f) for a, f in losses]
    return {
        "steps": steps,
        "batch_videos": amp.cfg.batch_videos,
        "amp_dtype": str(amp.amp_dtype).removeprefix("torch."),
        "loss_amp": [a for a, _ in losses],
        "loss_fp32": [f for _, f in losses],
        "relative_loss_diff_last": relative[-1],
        "relative_loss_diff_max": max(relative),
        "within_target": relative[-1] <= AMP_TARGET,
        "target": AMP_TARGET,
        "grad_first_step": grads["first"],
        "grad_last_step": grads.get("last", grads["first"]),
    }


def machine(device: torch.device, workers: int) -> dict:
    out = {
        "device": str(device),
        "torch": torch.__version__,
        "cpu_cores": os.cpu_count(),
        "workers": workers,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(
            gpu=props.name,
            gpu_memory_gb=props.total_memory / 2**30,
            bf16=torch.cuda.is_bf16_supported(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    return out


def default_workers() -> int:
    """Every core this process may use but one (the training loop's own)."""
    return max(0, usable_cores() - 1)


def run_profile(
    params_path: str | Path,
    profile: Profile,
    device: torch.device,
    work: Path | None,
    workers: int,
    repeats: int = 3,
    log=print,
) -> dict:
    """Every figure of the profile on ``device``; ``work`` keeps the synthetic set (else a temporary folder)."""
    raw = read_params(params_path)
    source = str(params_path)
    for batch in (*profile.batch_sizes, profile.amp_batch):
        bench_params(raw, profile, batch, True, workers, source)  # every setting is valid before any work
    for batch in profile.batch_sizes:
        if profile.train_videos // batch < 2:
            raise ConfigError(
                f"batch {batch}: the {profile.name} profile's {profile.train_videos} training videos "
                f"make fewer than 2 batches; the bench times the steps after the first"
            )
    result = {"profile": asdict(profile), "machine": machine(device, workers), "train": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(work) if work else Path(tmp) / "set"
        started = time.perf_counter()
        base = bench_params(raw, profile, profile.batch_sizes[0], True, workers, source)
        layout = make_set(profile, base, folder, workers)
        result["set"] = {
            "folder": str(folder) if work else None,
            "seconds": time.perf_counter() - started,
            "num_frames": base.model.num_frames,
            "extract": asdict(base.extract),
            "clip": base.clip.model,
        }
        log(f"synthetic {profile.name} set ready in {result['set']['seconds']:.0f} s ({folder})")
        for batch in profile.batch_sizes:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            trainer = Trainer(
                bench_params(raw, profile, batch, True, workers, source),
                layout,
                0,
                Path(tmp),
                Path(tmp) / "log.json",
                Process(0, 1, device),
            )
            row = timed_epoch(trainer)
            row["amp_dtype"] = str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype else "float32"
            if device.type == "cuda":
                row["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            result["train"].append(row)
            log(
                f"train batch {batch}: {row['videos_per_s']:.1f} videos/s, {row['frames_per_s']:.0f} frames/s, "
                f"loader wait {100 * row['data_wait_share']:.0f}%"
                + (f", peak {row['peak_cuda_mb']:.0f} MiB" if "peak_cuda_mb" in row else "")
            )
            if batch == profile.batch_sizes[-1]:
                result["eval"] = eval_throughput(trainer, repeats)
                log(
                    f"eval: {result['eval']['gallery_videos_per_s']:.1f} videos/s, "
                    f"{result['eval']['queries_per_s']:.0f} queries/s"
                )
            del trainer
        amp = Trainer(
            bench_params(raw, profile, profile.amp_batch, True, workers, source),
            layout,
            0,
            Path(tmp),
            Path(tmp) / "log.json",
            Process(0, 1, device),
        )
        if device.type == "cpu":
            amp.amp_dtype = torch.bfloat16  # the CPU's autocast; CUDA keeps the trainer's own choice
        fp32 = Trainer(
            bench_params(raw, profile, profile.amp_batch, False, workers, source),
            layout,
            0,
            Path(tmp),
            Path(tmp) / "log.json",
            Process(0, 1, device),
        )
        result["amp"] = amp_agreement(amp, fp32, profile.amp_steps)
        log(
            f"AMP ({result['amp']['amp_dtype']}) vs fp32 after {profile.amp_steps} steps: relative loss "
            f"difference {result['amp']['relative_loss_diff_last']:.2e}"
        )
    return result


# --------------------------------------------------------------------------- report


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """The figures as markdown tables (the GPU session pastes them into docs/gpu.md)."""
    m, s, p = result["machine"], result["set"], result["profile"]
    ext = s["extract"]
    lines = [
        (
            f"### propy bench, profile `{p['name']}` on {m.get('gpu', 'CPU')} ({m['device']}), torch {m['torch']}, "
            f"{m['cpu_cores']} CPU cores, {m['workers']} loader workers"
        ),
        "",
        (
            f"{p['train_videos']} training / {p['val_videos']} validation videos of {p['seconds']:g} s, "
            f"{p['queries_per_video']} queries each; cache {ext['fps']:g} fps, at most {ext['max_frames']} frames, "
            f"JPEG quality {ext['jpeg_quality']}; CLIP {s['clip']}, Nf = {s['num_frames']}. "
            f"Set made in {s['seconds']:.0f} s."
        ),
        "",
        (
            "| batch | precision | steps timed | s/step | videos/s | frames/s | loader wait | first batch wait (s) "
            "| epoch videos/s (start-up included) | peak GPU MiB |"
        ),
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["train"]:
        lines.append(
            f"| {r['batch_videos']} | {r['amp_dtype']} | {r['timed_steps']} | {_fmt(r['step_s'], 3)} | "
            f"{_fmt(r['videos_per_s'])} | {_fmt(r['frames_per_s'], 0)} | {100 * r['data_wait_share']:.0f}% | "
            f"{_fmt(r['first_batch_wait_s'], 2)} | {_fmt(r['epoch_videos_per_s'])} | "
            f"{_fmt(r.get('peak_cuda_mb'), 0)} |"
        )
    e, a = result["eval"], result["amp"]
    first, last = a["grad_first_step"], a["grad_last_step"]
    lines += [
        "",
        "| evaluation | value |",
        "| --- | ---: |",
        f"| gallery videos/s (propy.evaluation.encode, cache reads included) | {_fmt(e['gallery_videos_per_s'])} |",
        f"| queries/s | {_fmt(e['queries_per_s'], 0)} |",
        (
            f"| encode_video alone, batch {e['compute_batch_videos']} on the device (videos/s) "
            f"| {_fmt(e['compute_videos_per_s'])} |"
        ),
        f"| ProPy encode_video / CLIP encode_image | {_fmt(e['propy_over_clip'], 2)} |",
        "",
        (
            f"AMP ({a['amp_dtype']}) against fp32, batch {a['batch_videos']}, {a['steps']} steps from the same "
            f"weights on the same batches: relative loss difference {a['relative_loss_diff_last']:.2e} after the "
            f"last step (max {a['relative_loss_diff_max']:.2e}; target {a['target']:g}: "
            f"{'met' if a['within_target'] else 'NOT met'}); gradient cosine {first['cosine']:.5f} at the first "
            f"step, {last['cosine']:.5f} at the last (relative L2 {first['relative_l2']:.2e}, "
            f"{last['relative_l2']:.2e})."
        ),
        "",
    ]
    return "\n".join(lines)
