"""``python -m propy pretrain-clip``: train the small CLIP on synthetic frames and captions.

The work is done in ``propy.train.pretrain_clip``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy import __version__
from propy.config import (
    Params,
    add_layout_args,
    layout_from,
    load_params,
)
from propy.errors import ConfigError
from propy.runtime.files import (
    atomic_write_json,
    atomic_write_text,
    prepare_output,
)
from propy.runtime.locks import exclusive
from propy.stage_reads import guard


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    add_layout_args(parser)
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder of the trained weights; they are written to the file `clip.pretrained` "
        "names, which must lie in it",
    )
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    params = guard(load_params(args.params), "pretrain_clip")
    with exclusive(args.out, "pretrain-clip"):  # clip.resume.pt: one writer at a time
        prepare_output(args.out, folder=True)
        prepare_output(args.metrics)
        args.out.mkdir(parents=True, exist_ok=True)
        return _run(params, args)


def _run(params: Params, args: argparse.Namespace) -> int:
    if not params.pretrain_clip.enabled:  # real data: published weights; the stage's outputs still exist
        atomic_write_json(args.metrics, {"skipped": True, "propy_version": __version__})
        # DVC warns about an empty output folder on every run: leave a note in it instead
        atomic_write_text(
            args.out / "SKIPPED.txt",
            f"pretrain_clip.enabled is false: CLIP's weights are "
            f"clip.pretrained ({params.clip.pretrained or 'random init'})\n",
        )
        print(f"{args.params}: pretrain_clip.enabled is false: nothing to train")
        return 0
    out = Path(params.clip.pretrained)
    if not params.clip.pretrained or out.resolve().parent != args.out.resolve():
        raise ConfigError(
            f"{args.params}: clip.pretrained is {params.clip.pretrained!r}; with pretrain_clip.enabled "
            f"it must name the file this stage writes, a file in {args.out}/ (e.g. {args.out}/clip.pt)"
        )
    # imported here: torch and open_clip take seconds to load, which a skipped stage (real data) need not pay
    from propy.model.checkpoint import pick_device
    from propy.train.pretrain_clip import pretrain

    device = pick_device(args.device)
    metrics = pretrain(params, layout_from(args), out, Path(args.metrics), device)
    chance = 100.0 / metrics["num_classes"]
    print(
        f"pretrain-clip: {metrics['epochs']} epochs in {metrics['seconds']:.1f} s, final loss "
        f"{metrics['final_loss']:.3f}; zero-shot accuracy {metrics['zero_shot_accuracy']:.1f}% on "
        f"{metrics['num_frames']} val frames, {metrics['num_classes']} captions (chance {chance:.1f}%); wrote {out}"
    )
    return 0
