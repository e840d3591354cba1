"""Checkpoints that describe themselves, resume files, and the device choice, shared by every stage.

A trained checkpoint (``best.pt``, what ``evaluate``, ``search``, ``train --init-from`` and
``import-reference`` read) is ``{"format", "trainable", "fingerprint", "code_version", ...}``.
The fingerprint is what must be equal for the tensors to mean the same thing: the resolved
model settings, the CLIP architecture (the JSON config's content, not its path) and the
CLIP weights' SHA-256. Loading compares it with the requested config and refuses a
mismatch naming every differing key, because after an edit of ``interaction`` (say) the
old tensors still fit by shape and would load without complaint.

A resume file (``last.pt``, ``clip.resume.pt``) holds whatever a loop needs to continue plus
the hash of everything that shaped it; a file written for other settings is ignored in
``auto`` mode, and an unreadable one is reported by name and, in ``auto`` mode, set aside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from propy import __version__
from propy.config import flatten
from propy.errors import ConfigError, DataError
from propy.runtime.files import atomic_torch_save, file_digest

FORMAT = 1
RESUME_MODES = ("auto", "require", "never")
_UNREADABLE = (OSError, EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)


def json_digest(obj: Any) -> str:
    """Short SHA-256 of a JSON-able value, key order ignored."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def pick_device(name: str | None) -> torch.device:
    """``--device``: ``cuda`` when available unless ``cpu`` is asked for; an error if CUDA is asked
    for and missing."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def clip_fingerprint(clip_cfg) -> dict:
    """The CLIP a set of trained tensors belongs to: architecture content and weights' hash."""
    from propy.model.configs import model_config

    pretrained = clip_cfg.pretrained
    path = Path(pretrained) if pretrained else None
    if path is not None and path.is_file():
        weights = f"sha256:{file_digest(path)}"
    else:  # an open_clip tag, or random init ("")
        weights = pretrained
    return {"config": model_config(clip_cfg.model), "weights": weights}


def fingerprint(params) -> dict:
    """What a trained checkpoint must agree with: resolved model settings and the CLIP."""
    return {"model": dataclasses.asdict(params.model), "clip": clip_fingerprint(params.clip)}


def differences(saved: dict, wanted: dict, labels: tuple[str, str] = ("checkpoint", "requested")) -> list[str]:
    """``key: checkpoint X, requested Y`` (``labels`` name the two sides) for every dotted key whose
    values differ."""
    a, b = flatten(saved), flatten(wanted)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {labels[0]} {a.get(key, '<absent>')!r}, {labels[1]} {b.get(key, '<absent>')!r}")
    return lines


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` on CPU; an unreadable or truncated file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except _UNREADABLE as exc:
        raise DataError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
            "delete it and re-create it (e.g. re-run the stage that writes it)"
        ) from None


def save_trained(path: str | Path, trainable: dict[str, torch.Tensor], params, **extra: Any) -> None:
    """Write a trained checkpoint with its fingerprint and the code version (atomically)."""
    atomic_torch_save(
        path,
        {
            "format": FORMAT,
            "trainable": {k: v.detach().cpu() for k, v in trainable.items()},
            "fingerprint": fingerprint(params),
            "code_version": __version__,
            **extra,
        },
    )


def load_trained(path: str | Path, params) -> dict:
    """A trained checkpoint, checked against ``params``: a ConfigError lists every differing key."""
    path = Path(path)
    state = read_checkpoint(path)
    if not isinstance(state, dict) or "trainable" not in state or "fingerprint" not in state:
        raise DataError(
            f"{path}: not a propy trained checkpoint (expected the keys 'trainable' and "
            "'fingerprint', as `python -m propy train` or `import-reference` write)"
        )
    diff = differences(state["fingerprint"], fingerprint(params))
    if diff:
        where = f" for variant {params.variant!r}" if params.variant else ""
        raise ConfigError(
            f"{path}: was trained with other settings than requested{where}:\n  "
            + "\n  ".join(diff)
            + "\nre-train it (`python -m propy train`), or evaluate with the params it was trained with"
        )
    return state


def load_resume(path: str | Path, config_hash: str, mode: str, log=print) -> dict | None:
    """The resume state at ``path`` if it matches ``config_hash``, per ``mode``:
    ``never`` ignores it, ``auto`` uses it when it matches (else starts fresh, saying why),
    ``require`` insists (a ConfigError/DataError when missing, unreadable or mismatched)."""
    if mode not in RESUME_MODES:
        raise ValueError(f"resume mode must be one of {RESUME_MODES}, got {mode!r}")
    path = Path(path)
    if mode == "never" or (mode == "auto" and not path.is_file()):
        return None
    if not path.is_file():
        raise DataError(f"{path}: no checkpoint to resume from (drop --resume to start fresh)")
    try:
        state = read_checkpoint(path)
    except DataError as exc:
        if mode == "require":
            raise DataError(f"{exc} (or use --fresh to start again)") from None
        log(f"{path}: unreadable ({exc}); starting fresh")
        return None
    if not isinstance(state, dict) or state.get("config_hash") != config_hash:
        if mode == "require":
            raise ConfigError(f"{path}: was written for other params or input files; use --fresh to start again")
        log(f"{path}: written for other params or input files; starting fresh")
        return None
    return state


def save_resume(path: str | Path, config_hash: str, state: dict) -> None:
    atomic_torch_save(path, {"config_hash": config_hash, **state})
