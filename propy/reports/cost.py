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
from propy.errors import DataError
from propy.evaluation.cost import parameter_counts
from propy.evaluation.timing import Timing, time_alternating
from propy.reports.tables import load_logs


def machine() -> dict[str, str]:
    """CPU model, cores, torch version and threads of this machine."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }


# A variant that runs CLIP's image tower on the frames and adds work on top (every trained variant)
# cannot encode much faster than CLIP alone. Not exactly as fast: ProPy's blocks call
# scaled_dot_product_attention where open_clip's encode_image uses nn.MultiheadAttention, and ProPy
# without adapters measured 0.93-0.95x CLIP on the 2-core CPU machine. A wall or CPU ratio below this
# is beyond any such kernel difference: the measurement is wrong (the old page's seqconv at 0.48x).
PLAUSIBLE_RATIO = 0.8
BATCH = 8  # videos per timed forward: long enough that the clock's and the scheduler's noise stay small


def cost_table(
    params_path: str | Path,
    variants: Sequence[str],
    seeds: Sequence[int],
    logs_dir: str | Path,
    batch: int = BATCH,
    repeats: int = 9,
) -> tuple[pd.DataFrame, Timing]:
    """(per variant: trainable parameters and their share of the model, mean wall seconds per training
    epoch (training + validation, over epochs and seeds, from the logs), and its video encoding timed
    against CLIP's ``encode_image`` of the same frames; the CLIP timing of the first variant's frames).
    Every encoder and CLIP are timed in one ``time_alternating`` run (median of ``repeats`` forwards
    of ``batch`` videos, the range of the wall times as the spread), so every variant reading the same
    frames divides by the same CLIP measurement (one per distinct number of frames); wall and process
    CPU time are kept apart (CPU time is what other jobs on a shared machine disturb least)."""
    import torch

    from propy.model.backbone import create_clip
    from propy.model.network import build_model

    logs = load_logs(variants, seeds, logs_dir)
    models, counts, shape_of = {}, {}, {}
    for name in variants:
        params = load_params(params_path, variant=name)
        torch.manual_seed(0)
        clip = create_clip(params.clip.model, pretrained="")
        models[name] = build_model(params.model, clip).eval()
        counts[name] = parameter_counts(models[name])
        shape_of[name] = (params.clip.model, params.model.input_frames, clip.visual.image_size[0])
    # one CLIP and one batch of frames per distinct (CLIP, frames per video): every variant is one
    # such, so a study whose variants all read the same frames has exactly one CLIP measurement
    shapes = sorted(set(shape_of.values()), key=str)
    clips, frames = {}, {}
    for shape in shapes:
        torch.manual_seed(0)
        clips[shape] = create_clip(shape[0], pretrained="").eval()
        frames[shape] = torch.randn(batch, shape[1], 3, shape[2], shape[2])
    fns = {f"CLIP {i}": (lambda c=clips[s], f=frames[s]: c.encode_image(f.flatten(0, 1))) for i, s in enumerate(shapes)}
    fns.update({n: (lambda m=m, f=frames[shape_of[n]]: m.encode_video(f)) for n, m in models.items()})
    with torch.no_grad():
        timed = time_alternating(fns, repeats)
    reference_of = {n: timed[f"CLIP {shapes.index(shape_of[n])}"] for n in variants}
    rows = {}
    for name in variants:
        trainable = sum(n for n, t in counts[name].values() if t)
        total = sum(n for n, _ in counts[name].values())
        t, reference = timed[name], reference_of[name]
        rows[name] = {
            "trainable parameters": trainable,
            "trainable %": 100.0 * trainable / total,
            "s / epoch (wall)": float(logs.loc[logs["variant"] == name, "seconds"].mean()),
            "ms / video (wall)": 1000.0 * t.wall / batch,
            "fastest ms (wall)": 1000.0 * t.wall_min / batch,
            "slowest ms (wall)": 1000.0 * t.wall_max / batch,
            "ms / video (CPU)": 1000.0 * t.cpu / batch,
            "× CLIP (wall)": t.wall / reference.wall,
            "× CLIP (CPU)": t.cpu / reference.cpu,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table, reference_of[variants[0]]


def implausible(table: pd.DataFrame) -> list[str]:
    """Why each variant's encode ratio cannot be right: it adds work to CLIP's image tower, so neither
    its wall nor its CPU time can fall below ``PLAUSIBLE_RATIO`` times CLIP's."""
    out = []
    for name, row in table.iterrows():
        if min(row["× CLIP (wall)"], row["× CLIP (CPU)"]) < PLAUSIBLE_RATIO:
            out.append(
                f"{name} encodes at {row['× CLIP (wall)']:.2f}x CLIP's wall time and "
                f"{row['× CLIP (CPU)']:.2f}x its CPU time, yet it runs CLIP's image tower and adds to it"
            )
    return out


def checked_cost_table(
    params_path: str | Path, variants: Sequence[str], seeds: Sequence[int], logs_dir: str | Path, repeats: int = 9
) -> tuple[pd.DataFrame, Timing]:
    """``cost_table`` whose ratios pass ``implausible``; a burst of other work can fail one run, so a
    failing run is measured once more with twice the repeats, then DataError lists what is wrong: the
    page is never written with an implausible ratio."""
    for attempt in (repeats, 2 * repeats):
        table, clip = cost_table(params_path, variants, seeds, logs_dir, BATCH, attempt)
        problems = implausible(table)
        if not problems:
            return table, clip
    raise DataError("implausible encode timings after two runs (measure on a quieter machine): " + "; ".join(problems))
