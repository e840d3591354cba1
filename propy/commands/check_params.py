"""``python -m propy check-params``: validate params.yaml and every variant before a stage runs.

With ``--stages DIR`` it also writes each pipeline stage's resolved values (``propy.stage_params``).
Without ``--variant`` it prints the values that the dataset's layers (preset, overrides) decide,
each with its source, a warning for every base value they replace (an edit of that base key
does nothing on this dataset), then one line per variant (what it changes and the pyramid it
gets); with ``--variant`` the fully resolved values of that variant as YAML, each value a layer
set followed by a comment naming the layer. Any typo, bad choice or pyramid that does not fit
fails with the dotted path of the key.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import yaml

from propy.config import Params, flatten, read_params, resolve, shadowed_notes
from propy.errors import ConfigError
from propy.stage_params import write_stage_files


def configure_parser(parser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--variant", help="print the resolved values of this variant only")
    parser.add_argument("--dataset", help="resolve for this entry of `datasets` instead of `dataset`")
    parser.add_argument(
        "--stages",
        type=Path,
        metavar="DIR",
        help="also write each pipeline stage's resolved values to DIR/<stage>.yaml (dvc.yaml's stages depend on them)",
    )


def variant_summary(params: Params, base: Params) -> str:
    """One line: the variant's role, model kind, pyramid and every value it changes."""
    model = params.model
    pyramid = model.event_pyramid
    study = params.study
    role = (
        "trained" if params.variant in study.trained else "zero-shot" if params.variant in study.zero_shot else "unused"
    )
    mine, theirs = flatten(dataclasses.asdict(params)), flatten(dataclasses.asdict(base))
    changed = [
        f"{k}={v}" for k, v in mine.items() if k.partition(".")[0] not in ("variant", "sources") and theirs.get(k) != v
    ]
    shape = f"{pyramid.num_levels} levels, {pyramid.num_events} events" if model.kind == "propy" else "-"
    return f"{params.variant:<18} {role:<9} {model.kind:<8} {shape:<22} {', '.join(changed) or '(base)'}"


def weight_deps(dataset: str) -> tuple[str, str]:
    """The folders dvc.yaml's CLIP-loading stages of ``dataset`` depend on (see its header)."""
    return ("weights", f"models/{dataset}/clip")


def untracked_weights(params: Params) -> list[str]:
    """A ``clip.pretrained`` file outside :func:`weight_deps`: replacing it would re-run nothing."""
    path = Path(params.clip.pretrained)
    if not params.clip.pretrained or not (path.suffix or len(path.parts) > 1):  # "" or an open_clip tag
        return []
    folders = weight_deps(params.dataset)
    inside = any(path.as_posix().startswith(f"{folder}/") for folder in folders)
    return (
        []
        if inside
        else [
            f"clip.pretrained: {path} is not under {' or '.join(f'{f}/' for f in folders)}, so the pipeline's "
            f"stages do not depend on it and replacing it re-runs nothing; move it under weights/ "
            f"(the value is {params.where('clip.pretrained')})"
        ]
    )


def annotated_yaml(params: Params) -> str:
    """The resolved values as YAML; a value set by a layer ends with ``# <layer>``."""
    values = {k: v for k, v in dataclasses.asdict(params).items() if k != "sources"}
    lines = yaml.safe_dump(values, sort_keys=False, default_flow_style=False, width=1000).splitlines()
    out, path = [], []
    for line in lines:
        indent = (len(line) - len(line.lstrip(" "))) // 2
        key = line.strip().split(":", 1)[0]
        path = path[:indent] + [key]
        layer = params.sources.get(".".join(path))
        out.append(f"{line}  # {layer}" if layer else line)
    return "\n".join(out) + "\n"


def _raw(path: Path, dataset: str | None) -> dict:
    raw = read_params(path)
    resolve(raw, source=str(path))  # validates the file as written first, naming the file in every error
    if dataset is not None:
        raw["dataset"] = dataset
    return raw


def run(args) -> int:
    path = Path(args.params)
    raw = _raw(path, args.dataset)
    if args.variant is not None:
        params = resolve(raw, variant=args.variant, source=str(path))
        print(annotated_yaml(params), end="")
        return 0
    base = resolve(raw, source=str(path))
    variants = list(base.variants)
    if not variants:
        raise ConfigError(f"{path}: variants: no variant defined; the pipeline needs at least one")
    preset = f", preset {base.data.preset}" if base.data.preset else ""
    print(f"{path}: dataset {base.dataset}{preset}, clip {base.clip.model} ({base.clip.pretrained or 'random init'})")
    resolved = flatten(dataclasses.asdict(base))
    for key, layer in base.sources.items():
        print(f"  {key:<24} = {resolved.get(key, '(block)')!r:<24} from {layer}")
    for note in shadowed_notes(raw, base) + untracked_weights(base):
        print(f"warning: {note}", file=sys.stderr)
    in_study, unfit = {*base.study.trained, *base.study.zero_shot}, 0
    for name in variants:
        try:
            print(variant_summary(resolve(raw, variant=name, source=str(path)), base))
        except ConfigError as exc:
            if name in in_study:
                raise
            # a variant the study does not run may not fit this dataset (depth3 needs 8 frames): not an error
            print(f"warning: {exc} (not in the study, so nothing runs it)", file=sys.stderr)
            unfit += 1
    print(
        f"ok: {len(variants) - unfit} of {len(variants)} variants valid "
        f"({len(base.study.trained)} trained, {len(base.study.zero_shot)} zero-shot in the study)"
    )
    if args.stages is not None:
        written = write_stage_files(raw, args.stages, str(path))
        print(f"stage params: {len(written)} files in {args.stages}")
    return 0
