"""open_clip model configs (``embed_dim``, ``vision_cfg``, ``text_cfg``), read without importing open_clip.

Importing open_clip takes seconds (it imports torchvision, whose ops import torch._dynamo), and the
frame cache needs only the model's input size: this module reads the config files itself, from a
JSON path or from open_clip's own ``model_configs`` folder, found without running the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from propy.config import Params
from propy.errors import ConfigError
from propy.runtime.files import read_json

REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def is_json_path(name_or_json: str) -> bool:
    return str(name_or_json).endswith(".json")


def read_json_config(path: Path) -> dict:
    cfg = read_json(path, "no such model config file (clip.model)", ConfigError)
    missing = [k for k in REQUIRED_KEYS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise ConfigError(f"{path}: an open_clip model config needs {', '.join(missing)}")
    return cfg


def _library_config(name: str) -> dict | None:
    """open_clip's config of ``name`` as ``open_clip.get_model_config`` reads it: the file
    ``model_configs/<name>.json`` of the package, if it holds the required keys."""
    if ":" in name:  # hf-hub: or local-dir: schemas: open_clip fetches or reads those itself
        import open_clip

        return open_clip.get_model_config(name)
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("open_clip is not installed (pip install -e . installs it)")
    path = Path(spec.submodule_search_locations[0]) / "model_configs" / f"{name}.json"
    if not path.is_file():
        return None
    cfg = read_json(path, "no such model config file", ConfigError)
    return cfg if all(k in cfg for k in REQUIRED_KEYS) else None


def model_config(name_or_json: str) -> dict:
    """The open_clip config dict (embed_dim, vision_cfg, text_cfg) of a name or JSON path."""
    if is_json_path(name_or_json):
        return read_json_config(Path(name_or_json))
    cfg = _library_config(name_or_json)
    if cfg is None:
        raise ConfigError(
            f"clip.model: {name_or_json!r} is neither a .json config file nor an open_clip model "
            f"name (e.g. ViT-B-32; see open_clip.list_models())"
        )
    return cfg


def model_input_size(params: Params) -> int:
    """The CLIP input side (``vision_cfg.image_size`` of ``clip.model``): the default cache size."""
    image_size = model_config(params.clip.model)["vision_cfg"]["image_size"]
    if isinstance(image_size, (list, tuple)):
        if len(set(image_size)) != 1:
            raise ConfigError(f"clip.model: non-square image_size {image_size} is not supported")
        image_size = image_size[0]
    return int(image_size)
