"""``python -m propy import-reference CKPT --out models/<name>/``: the authors' trained ProPy as a propy checkpoint.

Writes ``<out>/best.pt`` (what ``evaluate``, ``search`` and ``train --init-from``
read), recording the source file's SHA-256, and, when CKPT carries the CLIP
weights (the reference saves its whole model), ``<out>/clip.pt``: those weights
as an open_clip checkpoint, so neither this nor a later evaluation downloads
anything. The fingerprint in ``best.pt`` then names ``clip.pt``'s hash, so the
params that evaluate it must point ``clip.pretrained`` at that file; the
command prints the lines to add. All checks run before the first byte is
written (``propy.model.reference``), and each file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from propy.config import Params, load_params
from propy.model.checkpoint import file_digest
from propy.model.reference import (
    import_reference,
    read_reference,
    write_import,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="a reference checkpoint: its ckpt.best.pth.tar (resume file) or a plain state_dict",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder, e.g. models/tvr_ref/ (gets best.pt, and clip.pt when CKPT carries CLIP)",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", help="variant whose model settings the checkpoint must fit (default: none)")


def params_lines(params_path: str, params: Params, out: Path) -> str:
    """A variant named after the output folder that evaluates the import, as YAML to paste."""
    raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    override = dict((raw.get("variants") or {}).get(params.variant) or {}) if params.variant else {}
    override["clip"] = {**override.get("clip", {}), "model": params.clip.model, "pretrained": params.clip.pretrained}
    name = out.name
    snippet = yaml.safe_dump({"variants": {name: override}}, default_flow_style=None, sort_keys=False)
    return (
        f"to evaluate it, add this variant to {params_path} (its clip.pretrained is what best.pt was bound to):\n"
        + "".join(f"  {line}\n" for line in snippet.splitlines())
        + f"then: python -m propy evaluate --params {params_path} --variant {name} --checkpoint {out / 'best.pt'}"
    )


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params, args.variant)
    ref = read_reference(args.checkpoint)
    imported = import_reference(ref.state, params)
    out = Path(args.out)
    bound = write_import(ref, imported, params, out)
    tensors = imported.trainable
    adapters = len({name.split(".")[1] for name in tensors if name.startswith("adapters.")})
    postfix = " and postfix" if "text_prompts.postfix.weight" in tensors else ""
    epoch = f", epoch {ref.epoch}" if ref.epoch is not None else ""
    shapes = {name: list(tensors[f"{name}.prompts"].shape) for name in ("event_prompts", "frame_prompts")}
    print(
        f"{out / 'best.pt'}: imported {ref.path} (sha256 {ref.sha256[:16]}...{epoch}): event prompts "
        f"{shapes['event_prompts']}, frame prompts {shapes['frame_prompts']}, text prefix{postfix} projection, "
        f"{adapters} temporal adapters"
    )
    for prefix, why in imported.dropped:
        print(f"  dropped {prefix}*: {why}")
    if imported.clip_weights is not None:
        clip_path = Path(bound.clip.pretrained)
        print(
            f"{clip_path}: the checkpoint's CLIP weights as an open_clip checkpoint "
            f"(sha256 {file_digest(clip_path)[:16]}...)"
        )
    else:
        print(
            f"the checkpoint carries no CLIP weights: best.pt is bound to clip.pretrained "
            f"{params.clip.pretrained!r}, which must be the CLIP the reference was trained with"
        )
    print(params_lines(args.params, bound, out))
    return 0
