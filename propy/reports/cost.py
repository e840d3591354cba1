"""The cost report: trainable parameters, training time per epoch and video-encoding speed per
variant, and the machine they were measured on.

Parameters are counted and encoders timed here, on each variant's model built with random CLIP
weights (counts and timings do not depend on weights; ``propy model-info`` does the same for
one variant). Training time comes from the training logs.
"""
from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from propy.config import load_params
from propy.evaluation.cost import encode_timings, parameter_counts
from propy.reports.tables import load_logs


def machine() -> dict[str, str]:
    """CPU model, cores, torch version and threads of this machine."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"CPU": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__,
            "torch threads": str(torch.get_num_threads()), "python": platform.python_version()}


def cost_table(params_path: str | Path, variants: Sequence[str], seeds: Sequence[int], logs_dir: str | Path,
               batch: int = 2, repeats: int = 3) -> pd.DataFrame:
    """Per variant: trainable parameters and their share of the model, mean seconds per training
    epoch (training + validation, over epochs and seeds), videos encoded per second (median of
    ``repeats`` forwards of ``batch`` videos) and the encode time over CLIP's ``encode_image``
    of the same frames (process CPU time, which other jobs on the machine disturb least)."""
    import torch

    from propy.model.backbone import create_clip
    from propy.model.network import build_model

    logs = load_logs(variants, seeds, logs_dir)
    rows = {}
    for name in variants:
        params = load_params(params_path, variant=name)
        torch.manual_seed(0)
        clip = create_clip(params.clip.model, pretrained="")
        model = build_model(params.model, clip).eval()
        counts = parameter_counts(model)
        trainable = sum(n for n, t in counts.values() if t)
        total = sum(n for n, _ in counts.values())
        size = clip.visual.image_size[0]
        frames = torch.randn(batch, params.model.input_frames, 3, size, size)
        timed = encode_timings(model, frames, repeats)
        rows[name] = {"trainable parameters": trainable, "trainable %": 100.0 * trainable / total,
                      "s / epoch": float(logs.loc[logs["variant"] == name, "seconds"].mean()),
                      "videos / s": batch / timed["propy"].wall,
                      "encode vs CLIP": timed["propy"].cpu / timed["clip"].cpu}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table
