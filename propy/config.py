"""Typed configuration loaded from ``params.yaml``.

Every block of ``params.yaml`` maps to a dataclass below. Loading checks every
key against the dataclass (unknown keys, wrong types, bad choices) and reports
the dotted path of the offending key, so a typo fails before a stage runs.

Every field is required: ``params.yaml`` states each value once, and nothing here
repeats it. Layers merged key by key onto the base blocks before validation: the
dataset's preset (``presets.paper``: the paper's settings), the dataset's own
``overrides`` (e.g. TVR's learning rate), then ``variants.<name>`` (an ablation,
e.g. ``{model: {interaction: none}}``), then the preset's own ``variants.<name>`` if it has
one (a prior method's published settings on real data, e.g. MS-SL's lr). Ranges are declared on the fields
(``bounded``) and cross-field rules in each class' ``problems()``; both are
checked by ``build`` with the dotted key in the message.

Precedence: a layer wins over the base blocks, so on a real dataset an edit of a base key
that the preset sets (``train.epochs``) has no effect. ``Params.sources`` records which layer
set each key; check-params and training list every base value a dataset layer replaces, and
``Params.where(key)`` lets an error name the layer and the key to edit instead.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from propy.errors import ConfigError
from propy.model.masks import INTERACTIONS
from propy.model.pyramid import Pyramid, build_pyramid

ModelKind = Literal["propy", "seqconv", "msl", "meanpool", "maxframe"]
TRAINED_KINDS = ("propy", "seqconv", "msl")  # the others are zero-shot baselines
QUERY_KINDS = ("appearance", "order", "composition", "context")  # of the synthetic benchmark (synth.py)
Interaction = Literal[INTERACTIONS]  # type: ignore[valid-type]  # values from masks, read by build()
SPLITS = ("train", "val", "test")
PyramidSpec = Union[list[int], list[list[int]]]  # noqa: UP007 (build() reads it at run time)  # overlap flags (Nf = 2^p) or windows [[c, o], ...]


def bounded(
    lo: float | None = None, hi: float | None = None, *, above: float | None = None, below: float | None = None
) -> Any:
    """A required field whose number (or every number of its list) must lie in a range:
    ``lo <= x <= hi``, ``x > above``, ``x < below``; build() checks it and names the key."""
    return field(metadata={"range": (lo, hi, above, below)})


T = typing.TypeVar("T")


@typing.dataclass_transform(field_specifiers=(field, bounded))
def params_block(cls: type[T]) -> type[T]:
    """``@dataclass`` for a params.yaml block; it also tells type checkers that ``bounded(...)`` declares
    a required field (a bare ``@dataclass`` would read it as a default)."""
    return dataclass(cls)


def _out_of_range(value: Any, lo, hi, above, below) -> str | None:
    numbers = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    for x in numbers:
        if x is None:
            continue
        if (
            (lo is not None and x < lo)
            or (hi is not None and x > hi)
            or (above is not None and x <= above)
            or (below is not None and x >= below)
        ):
            parts = [
                f">= {lo}" if lo is not None else "",
                f"> {above}" if above is not None else "",
                f"<= {hi}" if hi is not None else "",
                f"< {below}" if below is not None else "",
            ]
            return f"{value!r} is out of range; expected {' and '.join(p for p in parts if p)}"
    return None


@params_block
class SplitSizes:
    train: int = bounded(1)
    val: int = bounded(1)
    test: int = bounded(1)


@params_block
class SynthConfig:
    """The synthetic PRVR benchmark (see propy/data/synth.py)."""

    seed: int
    videos: SplitSizes
    size: int = bounded(16)  # frame side in pixels
    fps: int = bounded(1)
    events_per_video: list[int] = bounded(5)  # [min, max]
    event_seconds: list[float] = bounded(0.1)  # [min, max]
    # relative share of the probes of each query kind (appearance, order, composition, context)
    kind_mix: dict[str, float] = bounded(0)
    composition_events: list[int] = bounded(2)  # [min, max] events of a run
    kinds_per_pair: int = bounded(1, len(QUERY_KINDS))  # probes (queries) per video, each of another kind

    def problems(self) -> Iterator[tuple[str, str]]:
        for name in ("events_per_video", "event_seconds", "composition_events"):
            values = getattr(self, name)
            if len(values) != 2 or values[0] > values[1]:
                yield name, f"expected [min, max] with min <= max, got {values!r}"
        unknown = sorted(set(self.kind_mix) - set(QUERY_KINDS))
        if unknown or sum(self.kind_mix.values()) <= 0:
            yield (
                "kind_mix",
                (
                    f"expected non-negative weights of some of {', '.join(QUERY_KINDS)}, not all 0"
                    + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                ),
            )


@params_block
class DatasetEntry:
    """One benchmark: its video file extension, the preset it starts from and its own overrides.
    Where its files live is dvc.yaml's business (``--data data/<name>`` on each stage's command)."""

    video_ext: str
    preset: str | None  # a key of `presets`, applied before `overrides`
    overrides: dict


@params_block
class ExtractConfig:
    """The frame cache: frames decoded once, resampled at training time."""

    fps: float = bounded(above=0)  # frames cached per second of video
    max_frames: int = bounded(1)  # cap per video (long videos are cached at a lower rate)
    jpeg_quality: int | None = bounded(1, 95)  # None: raw uint8 frames; else JPEG (propy/data/frames.py)
    duration_tolerance: float = bounded(0)  # seconds a video may fall short of its annotations' duration
    skip_bad: bool  # skip missing/corrupt/too short videos (listed in the manifest) instead of failing


@params_block
class ClipConfig:
    """The frozen CLIP: an open_clip model name or JSON config path, and its weights."""

    model: str
    pretrained: str  # open_clip tag, local checkpoint, or "" (random init)


@params_block
class OptimConfig:
    """AdamW with a linear warm-up then cosine decay: the settings pre-training and training share."""

    lr: float = bounded(above=0)
    weight_decay: float = bounded(0)
    betas: list[float] = bounded(0, below=1)
    eps: float = bounded(above=0)
    warmup: float = bounded(0, below=1)  # fraction of all steps

    def problems(self) -> Iterator[tuple[str, str]]:
        if len(self.betas) != 2:
            yield "betas", f"expected a list of two numbers, got {self.betas!r}"


@params_block
class PretrainClipConfig(OptimConfig):
    """Contrastive pre-training of the small CLIP on synthetic frames + captions."""

    enabled: bool
    epochs: int = bounded(1)
    batch_size: int = bounded(1)
    frames_per_event: int = bounded(1)
    seed: int
    caption_gap: int = bounded(0, 3)  # how far the captions are worded from the queries (propy.data.wording)


@params_block
class MslConfig:
    """MS-SL (Dong et al. 2022), the prior PRVR method, on frozen CLIP frame embeddings (docs/msl.md).
    Names in comments are the reference code's options."""

    frames: int = bounded(1)  # max_ctx_l: frame embeddings per video (the frame scale)
    slots: int = bounded(1)  # map_size: clip slots; every run of consecutive slots is a proposal
    hidden: int = bounded(1)  # hidden_size
    heads: int = bounded(1)  # n_heads
    dropout: float = bounded(0, below=1)  # input_drop and drop
    scale_weights: list[float] = bounded(0)  # [clip_scale_w, frame_scale_w] of the ranking score
    margin: float = bounded(above=0)  # of both triplet ranking losses
    nce_weights: list[float] = bounded(0)  # [clip, frame] InfoNCE weights (the reference's 0.02, 0.04)
    hard_negative_start_epoch: int | None = bounded(0)  # 0-based epoch from which negatives are hard; null: never
    hard_pool_size: int = bounded(1)  # hard negatives are drawn from this many highest-scoring ones

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.slots > self.frames:
            yield "slots", f"{self.slots} slots need at least as many frames (frames is {self.frames})"
        if self.hidden % self.heads:
            yield "hidden", f"{self.hidden} is not a multiple of heads ({self.heads})"
        for name in ("scale_weights", "nce_weights"):
            if len(getattr(self, name)) != 2:
                yield name, f"expected a list of two numbers, got {getattr(self, name)!r}"


@params_block
class ModelConfig:
    kind: ModelKind
    num_frames: int = bounded(1)
    pyramid: PyramidSpec  # overlap flags [0, 1, 1] or windows [[2, 2], [2, 1], ...]
    single_event: bool  # one global event over all frames instead of the pyramid (an ablation)
    interaction: Interaction
    # uniform: the paper's VPT init; cls: CLIP's CLS token (after ln_pre) plus that noise (beyond the paper)
    event_prompt_init: Literal["uniform", "cls"]
    frame_prompts: int = bounded(0)  # Nvp per layer; 0 switches frame prompts off
    text_prompts: bool  # prefix prompts projected from the frame prompts
    postfix_prompts: bool  # inert under the causal text mask (kept as a documented switch)
    prompt_layers: int | None = bounded(1)  # deep prompts in the first N layers (None: all)
    adapters: bool
    adapter_layers: int | None = bounded(0)  # None: every vision block but the last
    adapter_width: int = bounded(1)
    adapter_kernel: int = bounded(1)
    # beyond the paper: learned per-frame position embeddings that the event attention sees (zero-init)
    temporal_embedding: bool
    msl: MslConfig  # read by model.kind msl only

    @property
    def input_frames(self) -> int:
        """Frames the model reads per video: MS-SL's ``msl.frames``, else ``num_frames``."""
        return self.msl.frames if self.kind == "msl" else self.num_frames

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.text_prompts and self.frame_prompts == 0:
            yield "text_prompts", "text prompts are projected from frame prompts: set frame_prompts > 0"
        if self.adapter_kernel % 2 == 0:
            yield "adapter_kernel", f"must be odd, got {self.adapter_kernel}"
        try:  # a pyramid that does not fit num_frames fails here, not deep inside a stage
            _ = self.event_pyramid
        except ConfigError as exc:
            yield "pyramid", str(exc)

    @functools.cached_property
    def event_pyramid(self) -> Pyramid:
        """The event pyramid this config asks for, built once; ``single_event`` is one window over
        every frame (whatever num_frames is, so the ablation needs no edit when Nf changes)."""
        if self.single_event:
            return build_pyramid(self.num_frames, [[self.num_frames, 1]])
        return build_pyramid(self.num_frames, self.pyramid)


@params_block
class TrainConfig(OptimConfig):
    epochs: int = bounded(1)
    batch_videos: int = bounded(1)
    grad_clip: float = bounded(above=0)
    max_words: int = bounded(3)  # [SOS] + at least one word + [EOS]
    amp: bool  # used on CUDA only; CPU runs float32
    num_workers: int = bounded(0)
    rival_batches: bool  # keep each video's rivals (the dataset's rivals.json) in its batch: hard negatives
    # stop after this many epochs without a better validation SumR (best.pt keeps the best); null: run every epoch
    patience: int | None = bounded(1)


@params_block
class EvalConfig:
    batch_videos: int = bounded(1)
    batch_queries: int = bounded(1)
    ks: list[int] = bounded(1)
    normalize_events: bool  # the reported ranking; the other setting is reported too
    ratio_bins: list[float] = bounded(above=0, below=1)
    vcmr_top_events: int = bounded(1)
    vcmr_max_proposals: int = bounded(1)
    iou_thresholds: list[float] = bounded(above=0, hi=1)
    vcmr_ks: list[int] = bounded(1)
    probe_iou: float = bounded(above=0, hi=1)  # rival probes: an own-video localisation counts at this IoU

    def problems(self) -> Iterator[tuple[str, str]]:
        for name in ("ks", "ratio_bins", "iou_thresholds", "vcmr_ks"):
            values = getattr(self, name)
            if not values or values != sorted(set(values)):
                yield name, f"expected a non-empty increasing list without repeats, got {values!r}"


@params_block
class StudyConfig:
    """Which variants the DVC pipeline runs (``foreach`` lists) and how the ablation tables group them.

    DVC's ``foreach`` iterates a list; trained and zero-shot variants need different
    stages (only the former has a checkpoint), hence two lists.
    """

    trained: list[str]
    seeds: list[int]  # each trained variant is trained once per seed; results pool over them
    zero_shot: list[str]
    ablations: dict[str, list[str]]  # table name -> rows in order

    def problems(self) -> Iterator[tuple[str, str]]:
        # DVC runs one stage per distinct entry, while pooling would count a repeated seed twice
        for name in ("trained", "seeds", "zero_shot"):
            values = getattr(self, name)
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                yield name, f"{', '.join(repeated)} listed more than once; list each once"


CLAIM_METRICS = ("SumR", "pairwise", "loc")  # per-query values pool pairs: SumR share, own-vs-rival, localisation
ClaimMetric = Literal[CLAIM_METRICS]  # type: ignore[valid-type]  # read by build()


@params_block
class ClaimTest:
    """One pre-registered test: ``variant`` against ``against`` on one metric of one query kind.
    The change is variant minus against; ``loc`` is judged on the moments both variants'
    proposals can reach at ``eval.probe_iou`` (``propy pool``)."""

    claim: str  # the claim in one sentence, as the verdict table states it
    variant: str  # the model the claim favours (e.g. full)
    against: str  # the model it is compared with (the ablation, or a baseline)
    kind: str  # one of QUERY_KINDS, or "all" (every test query)
    metric: ClaimMetric  # SumR (retrieval), pairwise (own video above its rival), loc (localisation)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.kind not in (*QUERY_KINDS, "all"):
            yield "kind", f"{self.kind!r} is not one of {', '.join(QUERY_KINDS)}, all"
        if self.variant == self.against:
            yield "against", f"compares {self.variant!r} with itself; expected another variant"


@params_block
class ClaimsConfig:
    """The pre-registered tests, one per claim, and the error rates they are judged at: a claim's
    verdict is its test at family-wise level ``alpha`` after Holm's correction across the tests
    that run; ``power`` sets the minimum detectable effect reported with every comparison."""

    alpha: float = bounded(above=0, below=1)  # family-wise error rate over the claims' tests
    power: float = bounded(above=0, below=1)  # of the minimum detectable effect (MDE)
    tests: dict[str, ClaimTest]  # claim name -> its one test

    def problems(self) -> Iterator[tuple[str, str]]:
        if not self.tests:
            yield "tests", "expected at least one claim"


@params_block
class SweepConfig:
    """Validation-only tuning (``propy sweep``): every combination of ``grid`` trained once."""

    variant: str  # the variant the grid's values are merged onto
    seed: int
    grid: dict[str, list]  # "block.key" -> values, e.g. {"train.lr": [0.003, 0.01]}
    caption_gaps: list[int] = bounded(0, 3)  # `propy gap-sweep`: the pretrain_clip.caption_gap levels it measures
    caption_gap_min: int = bounded(0, 3)  # its rule: the smallest gap from this one on ...
    caption_gap_tolerance: float = bounded(0)  # ... whose CLIP caption accuracy is at most this far below the first's

    def problems(self) -> Iterator[tuple[str, str]]:
        if len(set(self.caption_gaps)) != len(self.caption_gaps) or len(self.caption_gaps) < 2:
            yield "caption_gaps", f"expected two or more distinct levels, got {self.caption_gaps!r}"
        elif self.caption_gap_min not in self.caption_gaps:
            yield "caption_gap_min", f"expected one of caption_gaps {self.caption_gaps!r}, got {self.caption_gap_min}"
        if not self.grid:
            yield "grid", "expected at least one key to sweep"
        for key, values in self.grid.items():
            block, dot, name = key.partition(".")
            if not dot or block not in _OVERRIDABLE or not name:
                yield f"grid.{key}", f"expected a key <block>.<name> of one of {', '.join(_OVERRIDABLE)}"
            elif not values:
                yield f"grid.{key}", "expected a non-empty list of values"


@params_block
class ReportConfig:
    """Settings of the report notebooks (``python -m propy report``)."""

    kernel: str  # Jupyter kernel registered from the project's .venv
    headline: str  # the variant the index and the qualitative report show
    top_k: int = bounded(1)


@params_block
class Params:
    dataset: str
    datasets: dict[str, DatasetEntry]
    presets: dict[str, dict]
    synth: SynthConfig
    extract: ExtractConfig
    clip: ClipConfig
    pretrain_clip: PretrainClipConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    variants: dict[str, dict]
    study: StudyConfig
    claims: ClaimsConfig
    sweep: SweepConfig
    report: ReportConfig
    variant: str | None  # the variant these params were resolved for
    sources: dict[str, str]  # dotted key -> the layer that set it (see `merged`); keys not listed: base

    @property
    def data(self) -> DatasetEntry:
        return self.datasets[self.dataset]

    def source(self, key: str) -> str:
        """The layer that decided ``key`` (e.g. ``train.batch_videos``): a layer name or ``"base"``."""
        return source_of(self.sources, key)

    def where(self, key: str) -> str:
        """``key`` with where its value comes from and where to change it, for error messages."""
        return describe_source(key, self.source(key), self.dataset)


@dataclass(frozen=True)
class Layout:
    """Where a stage reads its inputs. dvc.yaml owns every path and passes these on the command
    line (``--data data/<dataset> --cache data/cache``), so no path is stated twice."""

    data: Path  # annotations/{train,val,test}.jsonl, videos/, and for the synthetic set its extras
    cache: Path | None  # the frame cache: <cache>/<split>/ (None for a reader of the dataset folder only)
    features: Path | None = None  # frozen CLIP frame embeddings <features>/<split>/ (`propy features`; MS-SL)

    def annotations(self, split: str) -> Path:
        return self.data / "annotations" / f"{split}.jsonl"

    @property
    def videos(self) -> Path:
        return self.data / "videos"

    @property
    def query_kinds(self) -> Path | None:
        """``query_kinds.json`` when the dataset has one (the synthetic benchmark does)."""
        path = self.data / "query_kinds.json"
        return path if path.is_file() else None

    @property
    def rivals(self) -> Path | None:
        """``rivals.json`` (``{desc_id: [rival vid_name, ...]}``, the rival probes) when the dataset has one."""
        path = self.data / "rivals.json"
        return path if path.is_file() else None

    @property
    def captions(self) -> Path:
        return self.data / "captions.jsonl"

    def cache_split(self, split: str) -> Path:
        if self.cache is None:
            raise ConfigError("no frame cache folder given (--cache)")
        return self.cache / split


# --------------------------------------------------------------------------- loading


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively by ``override`` (dicts merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.pyramid": [...], ...}``: the leaves of nested mappings by dotted path."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} does not match {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(typing.cast(type, tp), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        if not args:
            return value
        return {k: _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp in (dict, list):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected a {'mapping' if tp is dict else 'list'}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp} at {where}")  # a bug in this module


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping: types, ranges and the class' own ``problems()``,
    each error naming the dotted key ``where.field``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where + ': ' if where else ''}unknown key(s) {', '.join(unknown)}; expected some of {', '.join(fields)}"
        )
    dotted = lambda name: f"{where}.{name}" if where else name  # noqa: E731
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            raise ConfigError(f"{dotted(name)}: missing (expected {_type_name(hints[name])})")
        kwargs[name] = _coerce(data[name], hints[name], dotted(name))
        problem = "range" in f.metadata and _out_of_range(kwargs[name], *f.metadata["range"])
        if problem:
            raise ConfigError(f"{dotted(name)}: {problem}")
    obj = cls(**kwargs)
    for name, problem in getattr(obj, "problems", lambda: ())():
        raise ConfigError(f"{dotted(name)}: {problem}")
    return obj


def merged(raw: dict, variant: str | None, source: str) -> dict:
    """The raw blocks of ``variant``: base <- ``presets[datasets.<dataset>.preset]`` <-
    ``datasets.<dataset>.overrides`` <- ``variants.<variant>`` <- ``presets.<preset>.variants.<variant>``;
    each layer may touch only the overridable blocks (an error names the layer where the user wrote it)."""
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError(f"{source}: datasets: expected a mapping of dataset entries")
    name = raw.get("dataset")
    if name not in datasets:
        raise ConfigError(f"{source}: dataset: {name!r} is not one of {', '.join(map(str, datasets))}")
    entry = datasets[name] if isinstance(datasets[name], dict) else {}
    layers: list[tuple[str, dict]] = []
    per_variant: dict[str, Any] = {}
    preset = entry.get("preset")
    variants = raw.get("variants") or {}
    if preset is not None:
        presets = raw.get("presets") or {}
        if preset not in presets:
            raise ConfigError(
                f"{source}: datasets.{name}.preset: {preset!r} is not one of "
                f"{', '.join(presets) or '(no presets defined)'}"
            )
        blocks = dict(presets[preset]) if isinstance(presets[preset], dict) else presets[preset]
        per_variant = blocks.pop("variants", None) or {} if isinstance(blocks, dict) else {}
        stray = [v for v in per_variant if v not in variants] if isinstance(per_variant, dict) else [per_variant]
        if stray:
            raise ConfigError(
                f"{source}: presets.{preset}.variants: {', '.join(map(repr, stray))} is not a "
                f"variant; expected a mapping of some of {', '.join(map(str, variants))}"
            )
        layers.append((f"presets.{preset}", blocks))
    layers.append((f"datasets.{name}.overrides", entry.get("overrides") or {}))
    if variant is not None:
        if variant not in variants:
            raise ConfigError(f"{source}: variants: {variant!r} is not one of {', '.join(map(str, variants))}")
        layers.append((f"variants.{variant}", variants[variant] or {}))
        if variant in per_variant:  # the preset's setting of this variant (e.g. MS-SL's own lr) wins over it
            layers.append((f"presets.{preset}.variants.{variant}", per_variant[variant] or {}))
    out, sources = raw, {}
    for where, override in layers:
        _check_override_blocks(override, f"{source}: {where}")
        out = deep_merge(out, override)
        sources.update({key: where for key in flatten(override) if key})
    return {**out, "variant": variant, "sources": sources}


def source_of(sources: dict[str, str], key: str) -> str:
    """The layer that set ``key`` or the block holding it (a layer may replace a whole list or
    mapping, e.g. ``sweep.grid``); ``"base"`` when no layer touched it."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:n]))
        if found:
            return found
    return "base"


def change_at(key: str, layer: str, dataset: str) -> str:
    """The dotted key to edit to change ``key`` when ``layer`` sets it: the variant's own entry, or
    the dataset's overrides (which come after the preset, so they win over it)."""
    if layer == "base":
        return key
    target = layer if _per_variant(layer) else f"datasets.{dataset}.overrides"
    return f"{target}.{key}"


def _per_variant(layer: str) -> bool:
    """A variant's own layer: ``variants.<name>`` or a preset's ``presets.<p>.variants.<name>``."""
    return layer.startswith("variants.") or ".variants." in layer


def describe_source(key: str, layer: str, dataset: str) -> str:
    """``train.batch_videos (set by presets.paper in params.yaml, which replaces the base value;
    change it at datasets.tvr.overrides.train.batch_videos ...)``: what an error about ``key``
    names. The layers win over the base blocks (module docstring), so once a layer sets a key an
    edit of its base value does nothing; the message says which key to edit instead (DVC's
    ``-S ++key=value`` sets a key whether or not the layer has it yet)."""
    if layer == "base":
        return f"{key} (params.yaml: {key})"
    at = change_at(key, layer, dataset)
    return (
        f"{key} (set by {layer} in params.yaml, which replaces the base value; change it at {at}, "
        f"e.g. `dvc exp run -S ++{at}=...`)"
    )


def shadowed_notes(raw: dict, params: Params) -> list[str]:
    """One line per :func:`shadowed` value, for check-params and the training log."""
    return [
        f"{key}: the base value {base!r} is not used; {layer} sets {value!r} "
        f"(to change it, edit {change_at(key, layer, params.dataset)})"
        for key, base, value, layer in shadowed(raw, params)
    ]


def shadowed(raw: dict, params: Params) -> list[tuple[str, Any, Any, str]]:
    """Base values that a dataset layer (preset or overrides) replaces with another value:
    ``(key, base value, value used, layer)``. Editing those base keys (or ``dvc exp run -S
    train.epochs=...``) has no effect on this dataset, which is easy to miss: check-params and
    training print them. Variants are left out: changing the base is what a variant is for."""
    base = flatten({block: raw.get(block) for block in _OVERRIDABLE})
    used = flatten({block: dataclasses.asdict(getattr(params, block)) for block in _OVERRIDABLE})
    out = [
        (key, base[key], used.get(key), layer)
        for key, layer in params.sources.items()
        if not _per_variant(layer) and key in base
    ]
    return [item for item in out if item[1] != item[2]]


def resolve(raw: dict, variant: str | None = None, source: str = "params.yaml") -> Params:
    """Validated params of one variant (or of the base blocks with ``variant=None``).

    The base is checked first, so a mistake in a base block is reported there and not under
    the variant. Only the requested variant is checked: ``check-params`` checks them all, and
    a stage's start-up pays for its own variant alone.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    if variant is not None:
        resolve(raw, None, source)
    layered = merged(raw, variant, source)
    try:
        params = build(Params, layered, "")
    except ConfigError as exc:
        message = str(exc)
        layer = f"variants.{variant}: " if variant is not None else ""
        key = message.split(":", 1)[0]
        setter = source_of(layered["sources"], key)
        if setter not in ("base", f"variants.{variant}"):  # a preset's or dataset's value: say so
            message = f"{message}; the value is {describe_source(key, setter, raw['dataset'])}"
        raise ConfigError(f"{source}: {layer}{message}") from None
    if variant is None:
        _check_study(params, source)
    return params


VARIANT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")  # DVC's stage names (`train@<variant>-<seed>`),
# dvc.yaml's `variants.${...}` keys and the output folders all take it as it is


def _check_study(params: Params, source: str) -> None:
    """Variant names are plain words; names in ``study``, ``claims`` and ``report.headline`` must be
    variants; ablation rows must be trained; zero-shot variants must not train; the headline, which every
    comparison of ``pool`` is made against, must be trained. A claim's variants need not be in the study
    (``pool`` skips its test with a note)."""
    variants, study = params.variants, params.study
    for name in variants:
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: variants: {name!r} is not a usable variant name; expected letters, "
                "digits, '_' and '-' only (DVC's stage names and the output folders use it)"
            )
    named = {
        "study.trained": study.trained,
        "study.zero_shot": study.zero_shot,
        "report.headline": [params.report.headline],
        "sweep.variant": [params.sweep.variant],
    }
    named.update({f"study.ablations.{k}": v for k, v in study.ablations.items()})
    for name, test in params.claims.tests.items():
        named.update({f"claims.tests.{name}.variant": [test.variant], f"claims.tests.{name}.against": [test.against]})
    for where, names in named.items():
        for name in names:
            if name not in variants:
                raise ConfigError(
                    f"{source}: {where}: {name!r} is not a variant; expected one of {', '.join(variants)}"
                )
    for table, names in study.ablations.items():
        stray = [n for n in names if n not in study.trained]
        if stray:
            raise ConfigError(
                f"{source}: study.ablations.{table}: {', '.join(stray)} not in study.trained "
                "(the ablation tables compare trained variants)"
            )
    for where, names in (("study.trained", study.trained), ("study.zero_shot", study.zero_shot)):
        for name in names:
            kind = ((variants[name] or {}).get("model") or {}).get("kind", params.model.kind)
            if (kind in TRAINED_KINDS) != (where == "study.trained"):
                expected = (
                    f"a trained kind ({', '.join(TRAINED_KINDS)})"
                    if where == "study.trained"
                    else "a zero-shot kind (meanpool, maxframe)"
                )
                raise ConfigError(f"{source}: {where}: variant {name!r} has model.kind {kind!r}; expected {expected}")
    both = sorted(set(study.trained) & set(study.zero_shot))
    if both:
        raise ConfigError(f"{source}: study: {', '.join(both)} listed both as trained and as zero_shot")
    if params.report.headline not in study.trained:
        raise ConfigError(
            f"{source}: report.headline: {params.report.headline!r} is not in study.trained "
            f"({', '.join(study.trained) or 'empty'}); `pool` compares every variant with it, so "
            "it must be trained in the study"
        )


_OVERRIDABLE = ("synth", "extract", "clip", "pretrain_clip", "model", "train", "eval")


def _check_override_blocks(override: Any, where: str) -> None:
    if not isinstance(override, dict):
        raise ConfigError(f"{where}: expected a mapping of blocks to override")
    bad = sorted(set(override) - set(_OVERRIDABLE))
    if bad:
        raise ConfigError(f"{where}: cannot override {', '.join(bad)}; allowed blocks: {', '.join(_OVERRIDABLE)}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys silently, replacing a whole block: refuse it."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.name}: line {line}: key {key!r} is given twice "
                    f"(first on line {seen[key]}); merge the two into one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_params(path: str | Path) -> dict:
    """The raw mapping of a params file: UTF-8 text, valid YAML, no key given twice."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameters file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def params_comments(params_path: str | Path) -> dict[str, str]:
    """ "block.key" -> the comment ending that line of params.yaml (the file's own words for a setting
    or a variant); keys two spaces deep only."""
    out, block = {}, ""
    for line in Path(params_path).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w.]*):(.*?)\s#\s*(.*)$", line) or re.match(r"^( *)([A-Za-z_][\w.]*):", line)
        if not match:
            continue
        indent, key = match.group(1), match.group(2)
        if not indent:
            block = key
        elif indent == "  " and match.re.groups == 4:
            out[f"{block}.{key}"] = match.group(4).strip()
    return out


def load_params(path: str | Path = "params.yaml", variant: str | None = None) -> Params:
    return resolve(read_params(path), variant=variant, source=str(path))


def add_layout_args(parser, cache: bool = True, required: bool = True, features: bool = False) -> None:
    """``--data`` (and ``--cache``, ``--features``): the input folders a stage reads, given by dvc.yaml."""
    parser.add_argument(
        "--data", required=required, type=Path, help="the dataset's folder (annotations/, videos/), e.g. data/synthetic"
    )
    if cache:
        parser.add_argument("--cache", required=required, type=Path, help="the frame cache folder, e.g. data/cache")
    if features:
        parser.add_argument(
            "--features",
            type=Path,
            help="the frozen frame embeddings (`propy features`), e.g. data/features; model.kind msl reads them",
        )


def layout_from(args) -> Layout:
    return Layout(data=args.data, cache=getattr(args, "cache", None), features=getattr(args, "features", None))
