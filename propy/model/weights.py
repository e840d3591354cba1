"""CLIP weight files: OpenAI's TorchScript archives, open_clip state dicts, and their activation.

OpenAI publishes ``ViT-B-32.pt`` as a TorchScript archive (a zip holding ``code/`` and
``constants.pkl``), which open_clip's ``weights_only`` loading rejects. :func:`read_weights` turns
one into the open_clip state dict (same key names, minus the three size entries OpenAI stores as
tensors), so ``clip.pretrained`` may name the archive as published; ``python -m propy
convert-weights`` writes the same dict to a plain file once, for loaders other than propy.

OpenAI's models use QuickGELU (``x * sigmoid(1.702 x)``); open_clip's ``ViT-B-32`` uses GELU and
only ``ViT-B-32-quickgelu`` matches. The weights load either way, so a mismatch would silently
change every feature: the archive's code says which activation it was traced with, a converted
file records it (``{"state_dict", "activation"}``), and :func:`check_activation` refuses a model
config that differs. A plain state dict does not say; nothing is checked then.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from propy.errors import ConfigError

QUICK_GELU, GELU = "quick_gelu", "gelu"
_OPENAI_SIZE_KEYS = ("input_resolution", "context_length", "vocab_size")  # ints, not weights


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (what ``torch.jit.save`` writes)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def torchscript_activation(path: str | Path) -> str:
    """The activation a TorchScript CLIP was saved with, read from its code: QuickGELU's class
    name or its constant 1.702 appear there, and nowhere in a GELU model's code."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "/code/" in name and name.endswith(".py"):
                code = archive.read(name).decode("utf-8", errors="replace")
                if "QuickGELU" in code or "1.702" in code:
                    return QUICK_GELU
    return GELU


def _from_torchscript(path: Path) -> dict:
    import torch

    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript, yet OpenAI publishes CLIP in it
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise ConfigError(f"clip.pretrained: {path} is a TorchScript archive that cannot be loaded ({exc})") from None
    return {key: value.float() for key, value in module.state_dict().items() if key not in _OPENAI_SIZE_KEYS}


def read_weights(path: str | Path) -> tuple[dict | None, str | None]:
    """``(state dict, activation)`` of a weights file: for a TorchScript archive the converted dict;
    for any other file ``None`` (open_clip loads it itself) and the activation it records, if any."""
    import torch

    path = Path(path)
    if is_torchscript(path):
        return _from_torchscript(path), torchscript_activation(path)
    try:  # a memory map: only the small top-level dict is read, not the tensors
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except (RuntimeError, ValueError, OSError, EOFError):
        return None, None  # legacy or other formats: open_clip reads (or rejects) them
    activation = checkpoint.get("activation") if isinstance(checkpoint, dict) else None
    return None, activation if activation in (QUICK_GELU, GELU) else None


def check_activation(activation: str | None, model_cfg: dict, model: str, path: str | Path) -> None:
    """Refuse weights trained with one activation loaded into a model config with the other."""
    if activation is None:
        return
    built = QUICK_GELU if model_cfg.get("quick_gelu", False) else GELU
    if built != activation:
        hint = (
            'use an open_clip name ending in -quickgelu (e.g. ViT-B-32-quickgelu) or "quick_gelu": true '
            "in a JSON config"
            if activation == QUICK_GELU
            else "use a model without QuickGELU (e.g. ViT-B-32)"
        )
        raise ConfigError(
            f"clip.model: {model} builds {built.upper()} but the weights {path} were trained with "
            f"{activation.upper()}; {hint}"
        )


def convert(source: Path, out: Path) -> tuple[int, str]:
    """Write the open_clip state dict of a TorchScript archive to ``out`` (atomically), with its
    activation; returns (number of tensors, activation)."""
    from propy.runtime.files import atomic_torch_save

    if not source.is_file():
        raise ConfigError(f"{source}: no such weights file")
    if not is_torchscript(source):
        raise ConfigError(
            f"{source}: not a TorchScript archive; an open_clip state dict needs no conversion "
            f"(point clip.pretrained at it)"
        )
    state_dict, activation = _from_torchscript(source), torchscript_activation(source)
    atomic_torch_save(out, {"state_dict": state_dict, "activation": activation, "source": source.name})
    return len(state_dict), activation
