"""The resolved params each pipeline stage reads, one file per stage, so DVC re-runs a stage only when a
value it reads changes.

params.yaml is layered (base <- preset <- dataset overrides <- variant), and DVC tracks raw keys only:
a stage that tracked ``datasets.<d>`` and ``presets`` re-ran whenever any overridden value changed.
``check-params --stages DIR`` writes, per stage, the values of :data:`READS` after the layers are
applied; each stage depends on its own file. The stage commands read their params through
:func:`guard`, which raises on any value their entry does not list, so a missing entry fails a test
instead of leaving a stale result.

Keys: ``block`` or ``block.field`` (the stage's variant, or the base for a stage without one);
``variants`` (params.yaml's raw ``variants`` mapping); ``variants.block[.field]`` (that value resolved
for every variant of the study: pages and pooling load variants themselves); ``data.video_ext``
(the dataset entry's field); ``comments`` (params.yaml's end-of-line comments, which the index page's
glossary quotes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import yaml

from propy.config import Params, params_comments, resolve
from propy.errors import ConfigError
from propy.runtime.files import atomic_write_text

READS: dict[str, tuple[str, ...]] = {
    "extract": ("data.video_ext", "extract", "clip.model"),
    "pretrain_clip": ("clip", "pretrain_clip"),
    "features": ("clip",),
    "train": ("data", "extract", "clip", "model", "train", "eval"),
    "evaluate": ("clip", "model", "train.max_words", "eval"),
    "pool": ("study", "claims", "report.headline", "eval.ks", "eval.probe_iou", "train.epochs", "variants"),
    "report_data": ("model.num_frames",),
    "report_training": ("study.trained", "study.seeds", "train", "pretrain_clip.caption_gap", "variants.train"),
    "report_results": (
        "model.num_frames",
        "eval.ks",
        "eval.ratio_bins",
        "eval.iou_thresholds",
        "report.headline",
        "study.zero_shot",
        "study.trained",
        "study.seeds",
    ),
    "report_ablations": ("model", "variants", "variants.model", "study.trained", "study.ablations", "report.headline"),
    "report_qualitative": (
        "model",
        "variants",
        "variants.model",
        "report.headline",
        "report.top_k",
        "study.seeds",
        "study.trained",
    ),
    "report_cost": (
        "clip.model",
        "model",
        "variants",
        "variants.model",
        "study.trained",
        "study.seeds",
        "report.headline",
    ),
    "report_index": (
        "eval.ks",
        "model",
        "variants",
        "variants.model",
        "study.trained",
        "study.zero_shot",
        "study.ablations",
        "report.headline",
        "pretrain_clip.caption_gap",
        "comments",
    ),
}
PER_VARIANT = ("train", "evaluate")  # one file per variant: <stage>-<variant>.yaml, resolved for it
ALWAYS = frozenset({"dataset", "variant", "sources", "source", "where"})  # names and error-message helpers


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
    for variant in [*base.study.trained, *base.study.zero_shot]:
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


class _Fields:
    """One block of which a stage reads some fields only."""

    def __init__(self, block: Any, fields: frozenset[str], where: str, stage: str) -> None:
        self._block, self._fields, self._where, self._stage = block, fields, where, stage

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in self._fields:
            return getattr(self._block, name)
        raise _undeclared(self._stage, f"{self._where}.{name}")


class _StageParams:
    """:class:`Params` as ``stage`` may read them (see :func:`guard`)."""

    def __init__(self, params: Params, stage: str) -> None:
        self._params, self._stage = params, stage
        self._allowed: dict[str, frozenset[str] | None] = {}
        for key in READS[stage]:
            block, _, field = key.partition(".")
            if (block == "variants" and field) or block == "comments":
                continue  # resolved per variant by the code that loads them; comments are not params
            known = self._allowed.get(block, frozenset())
            self._allowed[block] = None if not field or known is None else known | {field}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ALWAYS:
            return getattr(self._params, name)
        if name not in self._allowed:
            raise _undeclared(self._stage, name)
        value = getattr(self._params, name)
        fields = self._allowed[name]
        return value if fields is None else _Fields(value, fields, name, self._stage)


def _undeclared(stage: str, key: str) -> ConfigError:
    return ConfigError(
        f"the {stage} stage reads {key}, which propy/stage_params.py's READS[{stage!r}] does not list: "
        "add it there, or DVC would not re-run the stage when it changes"
    )


def guard(params: Params, stage: str) -> Params:
    """``params`` for the command of ``stage``: reading a value its :data:`READS` entry does not list raises
    ConfigError naming the key (so the stage's params file, and DVC's re-runs, cover what it reads)."""
    return cast(Params, _StageParams(params, stage))
