"""Time the reference code (BUAAPY/ProPy, unchanged) on the synthetic set that `propy bench --profile tvr` made.

The reference trains from its own entry point, ``main_prvr.py``, with the flags of its
``scripts/prvr_tvr.sh`` (ViT-B/32, Nf = 32 via ``pyr_configs/cfg_32.json``, AMP, lr 8e-4, 4 frame
prompts, adapters of 384 channels and kernel 5 in all 12 layers). This driver only wraps two of its
functions from outside, ``train_epoch`` and ``prvr_eval_epoch``, with wall-clock timers (CUDA
synchronised), and runs its ``main``. It reads the same mp4 files and canonical annotations as propy
(the reference's annotation format is the same five fields) and decodes the mp4 in its data loader
each step, as it does on TVR.

What it needs besides the reference's own folder (``--ref``):
- CLIP weights: the reference refuses to start without ``<pretrained_dir>/ViT-B-32.pt``. Timings do
  not depend on weights, so a random ViT-B/32 with OpenAI's key names (open_clip's
  ``ViT-B-32-quickgelu``, seeded) is written there as a plain state dict, which the reference's
  loader accepts when the file is not TorchScript.
- ``boto3``/``botocore``: imported by its ``modules/file.py`` for S3 downloads it never makes here;
  when they are not installed, empty stand-in modules are registered before the import.
- ``av``, ``ftfy``, ``regex``, ``torchvision``: as propy.

Usage (after ``propy bench --profile tvr --work WORK``):
    python scripts/reference_timing.py --ref ref/ProPy --data WORK/synthetic --out OUT/reference \
        --batch 24 --workers 15 --epochs 2
Writes ``OUT/reference/timing.json`` and prints a markdown row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path


def random_clip_weights(path: Path, seed: int = 0) -> None:
    """A random ViT-B/32 (QuickGELU) state dict under OpenAI's key names, as a plain torch file."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


def stub_s3_modules() -> list[str]:
    """Register empty ``boto3`` / ``botocore.exceptions`` when missing; returns the names stubbed."""
    stubbed = []
    try:
        import boto3  # noqa: F401
    except ImportError:
        sys.modules["boto3"] = types.ModuleType("boto3")
        stubbed.append("boto3")
    try:
        from botocore.exceptions import ClientError  # noqa: F401
    except ImportError:
        exceptions = types.ModuleType("botocore.exceptions")
        exceptions.ClientError = type("ClientError", (Exception,), {})
        sys.modules["botocore"] = types.ModuleType("botocore")
        sys.modules["botocore.exceptions"] = exceptions
        stubbed.append("botocore")
    return stubbed


def reference_flags(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    """``scripts/prvr_tvr.sh``'s flags, with this run's data, batch, workers and epochs."""
    flags = {
        "do_train": 1,
        "do_eval": 0,
        "num_thread_reader": args.workers,
        "epochs": args.epochs,
        "batch_size": args.batch,
        "n_display": 40,
        "prvr_train_annos": data / "annotations" / "train.jsonl",
        "prvr_val_annos": data / "annotations" / "val.jsonl",
        "video_dir": data / "videos",
        "output_dir": out / "run",
        "optim": "AdamW",
        "lr": 8e-4,
        "coef_lr": 1e-3,
        "wd": 0.2,
        "max_words": 32,
        "batch_size_val": 16,
        "datatype": "tvr",
        "feature_framerate": 3,
        "freeze_layer_num": 12,
        "slice_framepos": 2,
        "linear_patch": "2d",
        "sim_header": "meanP",
        "pretrained_clip_name": "ViT-B/32",
        "precision": args.precision,
        "pretrained_dir": out / "CLIP_weights",
        "freeze_clip": 1,
        "resume": "None",
        "load_from_pretrained": 0,
        "shared_latent_space": "linear",
        "Nvp": 4,
        "num_adapter_layers": 12,
        "temp_kernel_sz": 5,
        "adapter_channels": 384,
        "pyr_config_path": "pyr_configs/cfg_32.json",
    }
    argv = [f"--{k}={v}" for k, v in flags.items()]
    return argv + ["--expand_msrvtt_sentences", "--loose_type"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ref", type=Path, required=True, help="the reference's folder (holds main_prvr.py)")
    parser.add_argument("--data", type=Path, required=True, help="the synthetic set (annotations/, videos/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights, the run and timing.json")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="the first epoch includes CUDA's warm-up")
    parser.add_argument("--precision", default="amp", choices=("amp", "fp32"))
    parser.add_argument("--propy", type=Path, help="propy's bench JSON of the same set: print the speed ratio")
    args = parser.parse_args()
    ref, data, out = args.ref.resolve(), args.data.resolve(), args.out.resolve()
    if not (ref / "main_prvr.py").is_file():
        parser.error(f"--ref {ref}: no main_prvr.py (fetch github:BUAAPY/ProPy there)")
    for name in ("annotations/train.jsonl", "annotations/val.jsonl", "videos"):
        if not (data / name).exists():
            parser.error(f"--data {data}: {name} is missing (make it with `propy bench --profile tvr --work DIR`)")
    random_clip_weights(out / "CLIP_weights" / "ViT-B-32.pt")
    stubbed = stub_s3_modules()

    import torch

    os.chdir(ref)  # its configs are read relative to its folder
    sys.path.insert(0, str(ref))
    import main_prvr
    from params import get_args

    times: dict[str, list[float]] = {"train_epoch": [], "prvr_eval_epoch": []}

    def timed(name: str, fn):
        def wrapper(*a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            result = fn(*a, **k)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
            return result

        return wrapper

    for name in times:
        setattr(main_prvr, name, timed(name, getattr(main_prvr, name)))
    sys.argv = ["main_prvr.py", *reference_flags(args, data, out)]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        main_prvr.main(get_args())
    except SystemExit as exc:  # its main ends with sys.exit(0)
        if exc.code not in (0, None):
            raise
    train_videos = len({json.loads(line)["vid_name"] for line in (data / "annotations" / "train.jsonl").open()})
    val_videos = len({json.loads(line)["vid_name"] for line in (data / "annotations" / "val.jsonl").open()})
    per_epoch = train_videos // args.batch * args.batch  # its loader drops the last partial batch
    result = {
        "reference": "BUAAPY/ProPy main_prvr.py",
        "batch": args.batch,
        "workers": args.workers,
        "precision": args.precision,
        "epochs": args.epochs,
        "train_videos_per_epoch": per_epoch,
        "train_epoch_s": times["train_epoch"],
        "eval_s": times["prvr_eval_epoch"],
        "train_videos_per_s": [per_epoch / s for s in times["train_epoch"]],
        "eval_gallery_videos_per_s": [val_videos / s for s in times["prvr_eval_epoch"]],
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "stubbed_modules": stubbed,
    }
    (out / "timing.json").write_text(json.dumps(result, indent=2))
    last = result["train_videos_per_s"][-1]
    print(
        f"reference (BUAAPY/ProPy) on {result['device']}, batch {args.batch}, {args.precision}, epoch {args.epochs} "
        f"of {per_epoch} videos: {last:.2f} videos/s (loader start-up included); evaluation (queries, gallery, "
        f"scores) {result['eval_gallery_videos_per_s'][-1]:.2f} gallery videos/s; peak GPU "
        f"{result['peak_cuda_mb'] or 0:.0f} MiB"
    )
    if args.propy:
        rows = [r for r in json.loads(args.propy.read_text())["train"] if r["batch_videos"] == args.batch]
        if rows:
            ratio = rows[0]["epoch_videos_per_s"] / last
            print(
                f"propy / reference training speed at batch {args.batch} (whole epochs, loader start-up "
                f"included): {rows[0]['epoch_videos_per_s']:.2f} / {last:.2f} = {ratio:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
