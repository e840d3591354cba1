"""Typed configuration loaded from ``params.yaml``.

Every block of ``params.yaml`` maps to a dataclass below. Loading checks every
key against the dataclass (unknown keys, wrong types, bad choices) and reports
the dotted path of the offending key, so a typo fails before a stage runs.

Two kinds of override are merged onto the base blocks before validation:
``datasets.<dataset>.overrides`` (e.g. the paper's hyper-parameters for TVR)
and ``variants.<name>`` (an ablation: e.g. ``{model: {interaction: none}}``).
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from propy.errors import ConfigError
from propy.pyramid import Pyramid, build_pyramid

Interaction = Literal["full", "descendants", "ancestors", "none", "dense"]
ModelKind = Literal["propy", "seqconv", "meanpool", "maxframe"]
TRAINED_KINDS = ("propy", "seqconv")  # the others are zero-shot baselines
SPLITS = ("train", "val", "test")


@dataclass
class SplitSizes:
    train: int = 240
    val: int = 60
    test: int = 60

    def __post_init__(self) -> None:
        for split in SPLITS:
            if getattr(self, split) < 1:
                raise ValueError(f"{split} must be at least 1")


@dataclass
class SynthConfig:
    """The synthetic PRVR benchmark (see propy/data/synth.py)."""

    seed: int = 0
    videos: SplitSizes = field(default_factory=SplitSizes)
    size: int = 64  # frame side in pixels
    fps: int = 8
    events_per_video: list[int] = field(default_factory=lambda: [7, 9])  # [min, max]
    event_seconds: list[float] = field(default_factory=lambda: [1.5, 3.0])  # [min, max]
    # relative share of (base, twin) pairs of each query kind (appearance, order, composition, context)
    kind_mix: dict[str, float] = field(default_factory=lambda: {
        "appearance": 1.0, "order": 1.0, "composition": 1.0, "context": 1.0})
    composition_events: list[int] = field(default_factory=lambda: [2, 3])  # [min, max] events of a run

    def __post_init__(self) -> None:
        _check_range(self.events_per_video, "events_per_video", minimum=5)
        _check_range(self.event_seconds, "event_seconds", minimum=0.1)
        _check_range(self.composition_events, "composition_events", minimum=2)
        kinds = ("appearance", "order", "composition", "context")
        unknown = sorted(set(self.kind_mix) - set(kinds))
        if unknown or any(w < 0 for w in self.kind_mix.values()) or sum(self.kind_mix.values()) <= 0:
            raise ValueError(f"kind_mix: non-negative weights of some of {', '.join(kinds)}, not all 0"
                             + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        if self.size < 16:
            raise ValueError("size must be at least 16 pixels")
        if self.fps < 1:
            raise ValueError("fps must be at least 1")


@dataclass
class DatasetEntry:
    """Where one dataset lives: ``<root>/annotations/{train,val,test}.jsonl`` and ``<root>/videos``."""

    root: str
    video_ext: str = ".mp4"
    query_kinds: Optional[str] = None  # json {desc_id: kind}, synthetic only
    rivals: Optional[str] = None  # json {desc_id: [rival vid_name, ...]}: the rival probes (synthetic only)
    overrides: dict = field(default_factory=dict)

    def annotations(self, split: str) -> Path:
        return Path(self.root) / "annotations" / f"{split}.jsonl"

    @property
    def videos(self) -> Path:
        return Path(self.root) / "videos"


@dataclass
class ExtractConfig:
    """The frame cache: frames decoded once, resampled at training time."""

    root: str = "data/cache"
    fps: float = 4.0  # frames cached per second of video
    max_frames: int = 128  # cap per video (long videos are cached at a lower rate)
    skip_bad: bool = False  # skip missing/corrupt videos (listed in the manifest) instead of failing

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        if self.max_frames < 1:
            raise ValueError("max_frames must be at least 1")


@dataclass
class ClipConfig:
    """The frozen CLIP: an open_clip model name or JSON config path, and its weights."""

    model: str = "configs/propy-tiny.json"
    pretrained: str = "models/clip/clip.pt"  # open_clip tag, local checkpoint, or "" (random init)


@dataclass
class PretrainClipConfig:
    """Contrastive pre-training of the small CLIP on synthetic frames + frame-state captions."""

    enabled: bool = True
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1.0e-3
    weight_decay: float = 0.1
    frames_per_event: int = 4
    seed: int = 0


@dataclass
class PyramidConfig:
    """Exactly one of ``windows`` ([[c, o], ...] per level) or ``overlaps`` (0/1 per level)."""

    windows: Optional[list[list[int]]] = None
    overlaps: Optional[list[int]] = None

    def __post_init__(self) -> None:
        if (self.windows is None) == (self.overlaps is None):
            raise ValueError("give exactly one of 'windows' or 'overlaps'")


@dataclass
class ModelConfig:
    kind: ModelKind = "propy"
    num_frames: int = 32
    pyramid: PyramidConfig = field(default_factory=lambda: PyramidConfig(overlaps=[0, 1, 1, 1, 1]))
    single_event: bool = False  # one global event over all frames instead of the pyramid (an ablation)
    interaction: Interaction = "full"
    # uniform: the paper's VPT init; cls: CLIP's CLS token (after ln_pre) plus that noise (beyond the paper)
    event_prompt_init: Literal["uniform", "cls"] = "uniform"
    frame_prompts: int = 4  # Nvp per layer; 0 switches frame prompts off
    text_prompts: bool = True  # prefix prompts projected from the frame prompts
    postfix_prompts: bool = False  # inert under the causal text mask (kept as a documented switch)
    prompt_layers: Optional[int] = None  # deep prompts in the first N layers (None: all)
    adapters: bool = True
    adapter_layers: Optional[int] = None  # None: every vision block
    adapter_width: int = 384
    adapter_kernel: int = 5
    # beyond the paper: learned per-frame position embeddings that the event attention sees (zero-init)
    temporal_embedding: bool = False

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError("num_frames must be at least 1")
        if self.frame_prompts < 0:
            raise ValueError("frame_prompts must be >= 0")
        if self.text_prompts and self.frame_prompts == 0:
            raise ValueError("text_prompts are projected from frame prompts: set frame_prompts > 0")
        if self.adapter_kernel < 1 or self.adapter_kernel % 2 == 0:
            raise ValueError("adapter_kernel must be a positive odd number")
        try:  # a pyramid that does not fit num_frames fails here, not deep inside a stage
            self.build_pyramid()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def build_pyramid(self) -> Pyramid:
        """The event pyramid this config asks for; ``single_event`` is one window over every frame
        (whatever num_frames is, so the ablation needs no edit when Nf changes)."""
        if self.single_event:
            return build_pyramid(self.num_frames, windows=[[self.num_frames, 1]])
        return build_pyramid(self.num_frames, self.pyramid.windows, self.pyramid.overlaps)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_videos: int = 24
    lr: float = 8.0e-4
    weight_decay: float = 0.2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1.0e-6
    warmup: float = 0.1  # fraction of all steps
    grad_clip: float = 1.0
    max_words: int = 32
    seed: int = 42
    amp: bool = True  # used on CUDA only; CPU runs float32
    num_workers: int = 0
    rival_batches: bool = False  # keep each video's rivals (datasets.<name>.rivals) in its batch: hard negatives

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ValueError("betas must be a list of two floats")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError("warmup is a fraction of all steps in [0, 1)")
        if self.epochs < 1 or self.batch_videos < 1:
            raise ValueError("epochs and batch_videos must be at least 1")


@dataclass
class EvalConfig:
    batch_videos: int = 32
    batch_queries: int = 512
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 100])
    normalize_events: bool = True  # the reported ranking; the other setting is reported too
    ratio_bins: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.4])
    vcmr_top_events: int = 10
    vcmr_max_proposals: int = 1000
    iou_thresholds: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    vcmr_ks: list[int] = field(default_factory=lambda: [1, 10, 100])
    probe_iou: float = 0.5  # rival probes: an own-video localisation counts at this temporal IoU


@dataclass
class StudyConfig:
    """Which variants the DVC pipeline runs (``foreach`` lists) and how the ablation tables group them.

    DVC's ``foreach`` iterates a list; trained and zero-shot variants need different
    stages (only the former has a checkpoint), hence two lists.
    """

    trained: list[str] = field(default_factory=lambda: ["full"])
    zero_shot: list[str] = field(default_factory=list)
    ablations: dict[str, list[str]] = field(default_factory=dict)  # table name -> rows in order


@dataclass
class ReportConfig:
    """Settings of the report notebooks (``python -m propy report``)."""

    kernel: str = "propy"  # Jupyter kernel registered from the project's .venv
    headline: str = "full"  # the variant the index and the qualitative report show
    qualitative_queries: int = 3
    top_k: int = 5
    strip_frames: int = 8  # sampled frames in the data report's strip

    def __post_init__(self) -> None:
        if self.qualitative_queries < 1 or self.top_k < 1 or self.strip_frames < 1:
            raise ValueError("qualitative_queries, top_k and strip_frames must be at least 1")


@dataclass
class Params:
    dataset: str
    datasets: dict[str, DatasetEntry]
    synth: SynthConfig
    extract: ExtractConfig
    clip: ClipConfig
    pretrain_clip: PretrainClipConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    variants: dict[str, dict]
    study: StudyConfig = field(default_factory=StudyConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    variant: Optional[str] = None  # the variant these params were resolved for

    @property
    def data(self) -> DatasetEntry:
        return self.datasets[self.dataset]


def _check_range(values: list, name: str, minimum: float) -> None:
    if len(values) != 2 or values[0] > values[1] or values[0] < minimum:
        raise ValueError(f"{name} must be [min, max] with {minimum} <= min <= max")


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
        return build(tp, value, where)
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
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
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
    """Build dataclass ``cls`` from a mapping, naming ``where`` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}: missing (expected {_type_name(hints[name])})")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def resolve(raw: dict, variant: Optional[str] = None, source: str = "params.yaml") -> Params:
    """Validate raw params, apply the dataset's overrides and then the variant's."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    raw = copy.deepcopy(raw)
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError(f"{source}: datasets: expected a mapping of dataset entries")
    name = raw.get("dataset")
    if name not in datasets:
        raise ConfigError(f"{source}: dataset: {name!r} is not one of {', '.join(map(str, datasets))}")
    entry = datasets[name] or {}
    overrides = entry.get("overrides", {}) if isinstance(entry, dict) else {}
    _check_override_blocks(overrides, f"{source}: datasets.{name}.overrides")
    raw = deep_merge(raw, overrides)
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict):
        raise ConfigError(f"{source}: variants: expected a mapping of named overrides")
    for vname, vover in variants.items():
        _check_override_blocks(vover or {}, f"{source}: variants.{vname}")
        try:  # validate every variant now, so a typo in any of them fails early
            build(Params, {**deep_merge(raw, vover or {}), "variant": None}, "")
        except ConfigError as exc:
            raise ConfigError(f"{source}: variants.{vname}: {exc}") from None
    _check_study(raw, variants, source)
    if variant is not None:
        if variant not in variants:
            raise ConfigError(f"{source}: variant {variant!r} is not one of {', '.join(variants)}")
        raw = deep_merge(raw, variants[variant] or {})
    raw["variant"] = variant
    try:
        return build(Params, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_study(raw: dict, variants: dict, source: str) -> None:
    """Names in ``study`` and ``report.headline`` must be variants; zero-shot ones must not train."""
    try:
        study = build(StudyConfig, raw.get("study"), "study")
        headline = build(ReportConfig, raw.get("report"), "report").headline
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    named = {"study.trained": study.trained, "study.zero_shot": study.zero_shot, "report.headline": [headline]}
    named.update({f"study.ablations.{k}": v for k, v in study.ablations.items()})
    for where, names in named.items():
        for name in names:
            if name not in variants:
                raise ConfigError(
                    f"{source}: {where}: {name!r} is not a variant; expected one of {', '.join(variants)}"
                )
    for where, names in (("study.trained", study.trained), ("study.zero_shot", study.zero_shot)):
        for name in names:
            kind = deep_merge(raw, variants[name] or {}).get("model", {}).get("kind", "propy")
            if (kind in TRAINED_KINDS) != (where == "study.trained"):
                expected = ("a trained kind (propy, seqconv)" if where == "study.trained"
                            else "a zero-shot kind (meanpool, maxframe)")
                raise ConfigError(
                    f"{source}: {where}: variant {name!r} has model.kind {kind!r}; expected {expected}"
                )
    both = sorted(set(study.trained) & set(study.zero_shot))
    if both:
        raise ConfigError(f"{source}: study: {', '.join(both)} listed both as trained and as zero_shot")


_OVERRIDABLE = ("synth", "extract", "clip", "pretrain_clip", "model", "train", "eval")


def _check_override_blocks(override: Any, where: str) -> None:
    if not isinstance(override, dict):
        raise ConfigError(f"{where}: expected a mapping of blocks to override")
    bad = sorted(set(override) - set(_OVERRIDABLE))
    if bad:
        raise ConfigError(f"{where}: cannot override {', '.join(bad)}; allowed blocks: {', '.join(_OVERRIDABLE)}")


def load_params(path: str | Path = "params.yaml", variant: Optional[str] = None) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameters file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return resolve(raw, variant=variant, source=str(path))
