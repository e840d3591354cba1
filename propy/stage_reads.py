"""What each pipeline stage reads of params.yaml, and the guard its command reads them through.

Keys: ``block`` or ``block.field`` (the stage's variant, or the base for a stage without one);
``variants`` (params.yaml's raw ``variants`` mapping); ``variants.block[.field]`` (that value resolved
for every variant of the study: pages and pooling load variants themselves); ``data.video_ext``
(the dataset entry's field); ``comments`` (params.yaml's end-of-line comments, which the index page's
glossary quotes). ``propy.stage_params`` writes each stage's values to the file its DVC stage depends
on; :func:`guard` raises on any value a command reads that its entry does not list, so a missing entry
fails a test instead of leaving a stale result.
"""

from __future__ import annotations

from typing import Any, cast

from propy.config import Params
from propy.errors import ConfigError

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
        f"the {stage} stage reads {key}, which propy/stage_reads.py's READS[{stage!r}] does not list: "
        "add it there, or DVC would not re-run the stage when it changes"
    )


def guard(params: Params, stage: str) -> Params:
    """``params`` for the command of ``stage``: reading a value its :data:`READS` entry does not list raises
    ConfigError naming the key (so the stage's params file, and DVC's re-runs, cover what it reads)."""
    return cast(Params, _StageParams(params, stage))
