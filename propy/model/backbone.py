"""The frozen CLIP, built with open_clip from a model name or a JSON config file.

A name (``ViT-B-32``) comes from open_clip's registry; a ``.json`` path is
registered with open_clip under its file stem, so ``create_model`` handles it
like a built-in (preprocess config, tokenizer, checkpoint loading). Weights are
an open_clip pretrained tag or a local checkpoint file; a checkpoint path that
does not exist is a ConfigError here, before open_clip could try the hub. OpenAI's
TorchScript archive is read by :mod:`propy.model.weights`, which also refuses weights
whose activation (QuickGELU or GELU) the model config does not build.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from propy.config import ClipConfig
from propy.errors import ConfigError
from propy.model.configs import is_json_path, model_config, read_json_config
from propy.model.weights import check_activation, read_weights


@dataclass(frozen=True)
class Backbone:
    """A frozen CLIP and what the data pipeline needs to feed it."""

    model: open_clip.CLIP
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    tokenizer: Callable


def _registered_name(name_or_json: str) -> str:
    """The open_clip registry name of a model: JSON configs are registered under their stem."""
    if not is_json_path(name_or_json):
        model_config(name_or_json)  # raises for unknown names
        return name_or_json
    path = Path(name_or_json)
    cfg = read_json_config(path)
    if open_clip.get_model_config(path.stem) != cfg:  # add_model_config rescans every config file
        open_clip.add_model_config(path)
    if open_clip.get_model_config(path.stem) != cfg:
        raise ConfigError(f"{path}: open_clip could not register it under the name {path.stem!r}")
    return path.stem


def _checked_pretrained(name: str, pretrained: str) -> str:
    """``pretrained`` if it is an existing file or a known tag of ``name``, else ConfigError."""
    if not pretrained or Path(pretrained).is_file():
        return pretrained
    if open_clip.get_pretrained_cfg(name, pretrained):
        return pretrained
    tags = open_clip.list_pretrained_tags_by_model(name)
    hint = f"; known tags of {name}: {', '.join(tags)}" if tags else ""
    raise ConfigError(
        f"clip.pretrained: no such checkpoint file {pretrained} (and not an open_clip "
        f'pretrained tag of {name}{hint}); use "" for random init'
    )


def create_clip(name_or_json: str, pretrained: str = "") -> open_clip.CLIP:
    """An open_clip CLIP (random init when ``pretrained`` is empty), not yet frozen."""
    name = _registered_name(str(name_or_json))
    pretrained = _checked_pretrained(name, str(pretrained or ""))
    state_dict = None  # weights open_clip cannot read itself (OpenAI's TorchScript archive), converted
    if pretrained and Path(pretrained).is_file():
        state_dict, activation = read_weights(pretrained)
        check_activation(activation, model_config(str(name_or_json)), str(name_or_json), pretrained)
    previous = logging.root.manager.disable
    if not pretrained or state_dict is not None:  # open_clip warns that it loaded no weights: we load them
        logging.disable(logging.WARNING)
    try:
        model = open_clip.create_model(name, pretrained=None if state_dict is not None else pretrained or None)
        if state_dict is not None:
            model.load_state_dict(state_dict)
    except (RuntimeError, TypeError) as exc:  # a checkpoint that does not fit, a bad config key
        raise ConfigError(f"clip: cannot build {name_or_json} with weights {pretrained!r}: {exc}") from None
    finally:
        logging.disable(previous)
    if not isinstance(model, open_clip.CLIP):
        raise ConfigError(
            f"clip.model: {name_or_json} builds a {type(model).__name__}; ProPy needs an "
            f"open_clip.CLIP with a ViT vision tower and the built-in text transformer"
        )
    return model


def _triple(values: Any, what: str) -> tuple[float, float, float]:
    out = [float(v) for v in values]
    if len(out) != 3:
        raise ConfigError(f"clip preprocess config: {what} must have 3 values, got {values!r}")
    return out[0], out[1], out[2]


def load_clip(clip_cfg: ClipConfig) -> Backbone:
    """The frozen (no grad, eval mode) CLIP of ``params.clip`` with its preprocessing and tokenizer."""
    model = create_clip(clip_cfg.model, clip_cfg.pretrained)
    model.requires_grad_(False)
    model.eval()
    pre = open_clip.get_model_preprocess_cfg(model)
    mean = pre.get("mean", open_clip.OPENAI_DATASET_MEAN)
    std = pre.get("std", open_clip.OPENAI_DATASET_STD)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    tokenizer = open_clip.get_tokenizer(_registered_name(clip_cfg.model))
    return Backbone(model, _triple(mean, "mean"), _triple(std, "std"), int(size), tokenizer)


def tokenize(tokenizer: Callable, texts: list[str], max_words: int) -> torch.LongTensor:
    """[N, max_words]: [SOS] + BPE tokens truncated to max_words - 2 + [EOS], zero padded.

    Cutting changes what a query asks, so a call that cuts any text warns once, with the count."""
    if max_words < 2:
        raise ConfigError(f"train.max_words must be at least 2 ([SOS] and [EOS]), got {max_words}")
    texts = list(texts)
    longer = (tokenizer(texts, context_length=max_words + 1)[:, max_words] != 0).nonzero().flatten().tolist()
    if longer:
        warnings.warn(
            f"{len(longer)} of {len(texts)} text(s) are longer than the text context of {max_words} "
            f"tokens (for queries: train.max_words) and are cut to fit it, e.g. {texts[longer[0]]!r}",
            stacklevel=2,
        )
    return tokenizer(texts, context_length=max_words)
