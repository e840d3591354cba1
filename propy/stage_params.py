"""The resolved params each pipeline stage reads, one file per stage, so DVC re-runs a stage only when a
value it reads changes.

params.yaml is layered (base <- preset <- dataset overrides <- variant), and DVC tracks raw keys only:
a stage that tracked ``datasets.<d>`` and ``presets`` re-ran whenever any overridden value changed.
``check-params --stages DIR`` writes, per stage, the values of ``propy.stage_reads.READS`` after the
layers are applied; each stage depends on its own file (and on propy/stage_reads.py, through which its
command reads them; not on this module, so how the files are written can change without re-running
the study).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from propy.config import Params, params_comments, resolve
from propy.runtime.files import atomic_write_text
from propy.stage_reads import PER_VARIANT, READS


def _value(params: Params, key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def stage_values(raw: dict, stage: str, variant: str | None = None, source: str = "params.yaml") -> dict:
    """The values ``stage`` reads, resolved for ``variant`` (``None``: the base); ``variants.*`` keys per
    variant of the study."""
    params = resolve(raw, variant, source)
    out: dict[str, Any] = {"dataset": params.dataset}
    study = [*params.study.trained, *params.study.zero_shot]
    for key in READS[stage]:
        if key == "comments":
            out[key] = params_comments(source)
        elif key.startswith("variants."):
            inner = key.removeprefix("variants.")
            out[key] = {name: _value(resolve(raw, name, source), inner) for name in study}
        else:
            out[key] = _value(params, key)
    return out


def stage_files(raw: dict, source: str = "params.yaml") -> dict[str, dict]:
    """``{file name: values}`` for every stage of the study: ``extract.yaml``, ``train-full.yaml``, ..."""
    base = resolve(raw, None, source)
    files = {}
    for stage in READS:
        if stage not in PER_VARIANT:
            files[f"{stage}.yaml"] = stage_values(raw, stage, None, source)
    for variant in base.study.trained:
        files[f"train-{variant}.yaml"] = stage_values(raw, "train", variant, source)
    for variant in base.study.zero_shot:  # a trained variant's stage evaluates it too: its train file covers eval
        files[f"evaluate-{variant}.yaml"] = stage_values(raw, "evaluate", variant, source)
    return files


def write_stage_files(raw: dict, folder: Path, source: str = "params.yaml") -> list[Path]:
    """Write :func:`stage_files` into ``folder`` (atomically, each file) and remove files of stages that
    are gone (a variant dropped from the study)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = stage_files(raw, source)
    for stale in sorted(folder.glob("*.yaml")):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, values in files.items():
        text = yaml.safe_dump(values, sort_keys=False, default_flow_style=False, width=1000)
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    return written
