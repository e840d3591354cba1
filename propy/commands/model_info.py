"""``python -m propy model-info``: print the pyramid, parameter counts and forward times.

The work is done in ``propy.evaluation.cost``.
"""

from __future__ import annotations

import argparse
import dataclasses

from propy.config import ModelConfig, build, deep_merge, load_params, read_params
from propy.errors import ConfigError
from propy.evaluation.cost import encode_timings, parameter_counts

PAPER = "paper"  # the preset of params.yaml used with an open_clip --clip


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", default=None, help="a variant of params.yaml")
    parser.add_argument(
        "--clip",
        default=None,
        help="open_clip name or JSON config instead of params' clip.model; with an open_clip name "
        f"(e.g. ViT-B-32) the model settings of the preset `presets.{PAPER}` (Nf 32, 42 events) are used",
    )
    parser.add_argument("--batch", type=int, default=2, help="videos per timed forward (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards of each model (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def _configs(args: argparse.Namespace) -> tuple[str, ModelConfig]:
    """(clip model, model config) from params and the --clip override."""
    params = load_params(args.params, args.variant)
    if args.clip is None:
        return params.clip.model, params.model
    if args.clip.endswith(".json"):
        return args.clip, params.model
    preset = (read_params(args.params).get("presets") or {}).get(PAPER)  # an open_clip model: the paper's model
    if preset is None:
        raise ConfigError(
            f"{args.params}: presets.{PAPER}: missing; --clip with an open_clip name uses its model block"
        )
    raw_model = deep_merge(dataclasses.asdict(params.model), preset.get("model") or {})
    return args.clip, build(ModelConfig, raw_model, f"presets.{PAPER}.model")


def run(args: argparse.Namespace) -> int:
    import torch

    from propy.model.backbone import create_clip
    from propy.model.network import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    clip_name, model_cfg = _configs(args)
    torch.manual_seed(0)
    clip = create_clip(clip_name, pretrained="")
    model = build_model(model_cfg, clip).eval()
    size = clip.visual.image_size[0]
    print(
        f"clip: {clip_name} (random weights), image {size}px, "
        f"{model.clip.visual.grid_size[0] ** 2 + 1} tokens per frame, "
        f"{len(clip.visual.transformer.resblocks)} vision blocks"
    )
    print(f"model: kind {model_cfg.kind}, {model_cfg.input_frames} frames, interaction {model_cfg.interaction}")
    if hasattr(model, "pyramid"):
        print(model.pyramid.describe())
    print(f"Ne = {model.num_events} events per video")

    counts = parameter_counts(model)
    trained = sum(n for n, t in counts.values() if t)
    frozen = sum(n for n, t in counts.values() if not t)
    print("parameters:")
    for name, (n, trainable) in sorted(counts.items(), key=lambda kv: (not kv[1][1], kv[0])):
        print(f"  {name:34s} {n:>12,d}  {'trainable' if trainable else 'frozen'}")
    print(f"  {'total trainable':34s} {trained:>12,d}  ({100 * trained / (trained + frozen):.2f}% of all)")
    print(f"  {'total frozen':34s} {frozen:>12,d}")

    frames = torch.randn(args.batch, model_cfg.input_frames, 3, size, size)
    timed = encode_timings(model, frames, args.repeats)
    propy_wall, propy_cpu, clip_wall, clip_cpu = (
        timed["propy"].wall,
        timed["propy"].cpu,
        timed["clip"].wall,
        timed["clip"].cpu,
    )
    nframes = args.batch * model_cfg.input_frames
    print(
        f"encode_video: {args.batch} videos x {model_cfg.input_frames} frames on CPU, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} (wall / process CPU time):"
    )
    print(
        f"  {model_cfg.kind:8s} {1000 * propy_wall:9.1f} ms / {1000 * propy_cpu:9.1f} ms"
        f"  ({1000 * propy_wall / nframes:.2f} ms/frame)"
    )
    print(f"  {'clip':8s} {1000 * clip_wall:9.1f} ms / {1000 * clip_cpu:9.1f} ms  (encode_image of the same frames)")
    print(f"  ratio {model_cfg.kind}/clip = {propy_wall / clip_wall:.2f}x wall, {propy_cpu / clip_cpu:.2f}x CPU time")
    return 0
