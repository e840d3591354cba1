"""The authors' checkpoints (github.com/BUAAPY/ProPy) read and mapped onto propy's ProPy.

The reference saves its whole ``CLIP4Clip_PRVR`` model: the frozen CLIP under
``clip.<OpenAI name>`` (the same names as open_clip's CLIP) and the trained
tensors under its own names. Four of those become propy parameters (event
prompts, frame prompts, the text prefix projection, the temporal adapters);
three have no effect on any output and are dropped, with the reason printed:
the last vision block's adapter (events read each block's input), the postfix
text projection (inert under the causal text mask) and the unused time
embedding. The mapping was measured against the reference's own outputs
(tests/data/reference/): with it, events, text, loss and gradients agree to
float32 rounding.

Every shape is checked against the requested config before anything is built
from it, because a checkpoint of another pyramid or adapter width would
otherwise fail deep inside ``load_state_dict`` without saying which setting
to change. Checkpoints are unpickled with ``weights_only`` (tensors, numbers,
strings): a downloaded file is never allowed to run code.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from torch import nn

from propy.config import ModelConfig, Params
from propy.errors import ConfigError, DataError
from propy.model.backbone import create_clip
from propy.model.checkpoint import file_digest, save_trained
from propy.model.configs import model_config
from propy.model.network import ProPy
from propy.runtime.files import atomic_write_with

CLIP_PREFIX = "clip."
EVENT_PROMPTS = "clip.visual.global_prompts"
FRAME_PROMPTS = "clip.visual_prompt_embedding"
TIME_EMBEDDING = "clip.visual.frame_embedding"
_ADAPTER = "clip.visual.transformer.resblocks.{block}.temp_adapter."
_ADAPTER_PARTS = {"fc1": "down", "conv": "conv", "fc2": "up"}  # reference -> propy

DROP_LAST_ADAPTER = (
    "the last vision block's temporal adapter: events read each block's input, so its "
    "output reaches no event (its gradient is exactly 0 in the reference)"
)
DROP_POSTFIX = (
    "the postfix text prompts: appended after the padded text, nothing attends to them under "
    "the causal mask (set model.postfix_prompts: true to keep them)"
)
DROP_TIME_EMBEDDING = "the time embedding: the reference's forward pass never adds it"


@dataclass(frozen=True)
class ReferenceCheckpoint:
    """A reference checkpoint's model tensors (``module.`` prefixes removed) and its provenance."""

    path: Path
    sha256: str
    state: dict[str, torch.Tensor]
    epoch: int | None  # epochs completed, for a resume file


@dataclass(frozen=True)
class Imported:
    """What an import produces: propy's trained tensors, the checkpoint's CLIP weights as an
    open_clip state dict (None when it carries none) and ``(reference prefix, why)`` for what was dropped."""

    trainable: dict[str, torch.Tensor]
    clip_weights: dict[str, torch.Tensor] | None
    dropped: list[tuple[str, str]]


# --------------------------------------------------------------------------- reading


def _numpy_scalar_globals() -> list:
    """What a pickled numpy scalar needs (the reference stores its best metric as one), under
    numpy 2's names and numpy 1's (``numpy.core``, what the authors' environment wrote)."""
    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ("f8", "f4", "i8", "i4")]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]


def read_reference(path: str | Path) -> ReferenceCheckpoint:
    """A plain ``state_dict`` or a resume file (``state_dict``, ``epoch``, ``optimizer``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path}: holds Python objects other than tensors and numbers, which propy does not "
            f"unpickle from a downloaded file ({str(exc).splitlines()[0]})"
        ) from None
    except (OSError, EOFError, RuntimeError, zipfile.BadZipFile, ValueError) as exc:
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    resume = isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict)
    state = raw["state_dict"] if resume else raw
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise DataError(
            f"{path}: not a reference checkpoint: expected a state_dict (names -> tensors) "
            "or a resume file with one under 'state_dict'"
        )
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    epoch = raw.get("epoch") if resume and isinstance(raw.get("epoch"), int) else None
    return ReferenceCheckpoint(path, file_digest(path), state, epoch)


# --------------------------------------------------------------------------- the mapping


def frame_prompts_from_reference(tensor: torch.Tensor, layers: int) -> torch.Tensor:
    """[1, Nvp, L*W] -> [L, Nvp, W]: the reference views each prompt's row as L layers of W
    (prompt-major), so layer i of prompt p is ``tensor[0, p, i*W:(i+1)*W]``."""
    return tensor[0].unflatten(-1, (layers, -1)).transpose(0, 1)


def conv_from_reference(tensor: torch.Tensor) -> torch.Tensor:
    """Conv3d weight [C, 1, k, 1, 1] -> [C, k]; both are cross-correlations, so no flip."""
    return tensor[:, 0, :, 0, 0]


def map_trainables(ref: dict[str, torch.Tensor], model: ProPy) -> tuple[dict[str, torch.Tensor], list[tuple[str, str]]]:
    """Reference-named trained tensors -> (propy-named tensors, dropped ``(prefix, why)``).

    ``ref`` must have the shapes that :func:`expected_shapes` gives for ``model``, which
    :func:`check_config` accepted (adapters in all but the last block).
    """
    if model.frame_prompts is None or model.text_prompts is None:  # check_config refuses such a config
        raise ConfigError("the reference's checkpoints always have frame and text prompts; this model has none")
    out = {"event_prompts.prompts": ref[EVENT_PROMPTS][0]}
    out["frame_prompts.prompts"] = frame_prompts_from_reference(ref[FRAME_PROMPTS], model.frame_prompts.num_layers)
    dropped = []
    sides = ["prefix"] + (["postfix"] if model.text_prompts.postfix is not None else [])
    if len(sides) == 1:
        dropped.append(("clip.postfix_proj.", DROP_POSTFIX))
    for side in sides:
        for part in ("weight", "bias"):
            out[f"text_prompts.{side}.{part}"] = ref[f"clip.{side}_proj.{part}"]
    blocks = len(model.clip.visual.transformer.resblocks)
    for block in range(blocks):
        prefix = _ADAPTER.format(block=block)
        if block >= len(model.adapters):  # only the last block (checked by check_config)
            dropped.append((prefix, DROP_LAST_ADAPTER))
            continue
        for ref_part, part in _ADAPTER_PARTS.items():
            for kind in ("weight", "bias"):
                tensor = ref[f"{prefix}{ref_part}.{kind}"]
                if ref_part == "conv" and kind == "weight":
                    tensor = conv_from_reference(tensor)
                out[f"adapters.{block}.{part}.{kind}"] = tensor
    if TIME_EMBEDDING in ref:
        dropped.append((TIME_EMBEDDING, DROP_TIME_EMBEDDING))
    return {k: v.float().contiguous() for k, v in out.items()}, dropped


# --------------------------------------------------------------------------- checks

Dims = tuple[tuple[int, str], ...]  # per dimension: (size, the config key that sets it)


def expected_shapes(model: ProPy, cfg: ModelConfig) -> dict[str, Dims]:
    """The reference-named trained tensors and their shapes for ``model`` (built from ``cfg``).

    The reference has an adapter in every vision block and both text projections
    (it cannot run otherwise), so those are expected whatever propy keeps of them.
    """
    visual = model.clip.visual
    width = visual.transformer.width
    w, wt = (width, "clip.model"), (model.clip.transformer.width, "clip.model")
    layers = model.frame_prompts.num_layers if model.frame_prompts is not None else 0
    hidden, kernel = (cfg.adapter_width, "model.adapter_width"), (cfg.adapter_kernel, "model.adapter_kernel")
    one = (1, "")
    shapes: dict[str, Dims] = {
        EVENT_PROMPTS: (one, (model.num_events, "model.num_frames and model.pyramid"), w),
        FRAME_PROMPTS: (one, (cfg.frame_prompts, "model.frame_prompts"), (layers * width, "model.prompt_layers")),
    }
    for side in ("prefix", "postfix"):
        shapes[f"clip.{side}_proj.weight"] = (wt, w)
        shapes[f"clip.{side}_proj.bias"] = (wt,)
    for block in range(len(visual.transformer.resblocks)):
        prefix = _ADAPTER.format(block=block)
        shapes.update(
            {
                f"{prefix}fc1.weight": (hidden, w),
                f"{prefix}fc1.bias": (hidden,),
                f"{prefix}conv.weight": (hidden, one, kernel, one, one),
                f"{prefix}conv.bias": (hidden,),
                f"{prefix}fc2.weight": (w, hidden),
                f"{prefix}fc2.bias": (w,),
            }
        )
    return shapes


def check_shapes(ref: dict[str, torch.Tensor], expected: dict[str, Dims]) -> None:
    """ConfigError naming the first tensor whose shape differs, both shapes and the key to change."""
    for name, dims in expected.items():
        got, want = tuple(ref[name].shape), tuple(size for size, _ in dims)
        if got == want:
            continue
        if len(got) != len(want):
            raise DataError(
                f"{name}: shape {got} in the checkpoint; the reference writes {len(want)} "
                f"dimensions {want}, so this is not a ProPy reference checkpoint"
            )
        dim = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        raise ConfigError(
            f"{name}: shape {got} in the checkpoint, {want} for this config (dimension {dim}: "
            f"{got[dim]} vs {want[dim]}); change {dims[dim][1]} to fit the checkpoint"
        )


def check_config(model: ProPy, cfg: ModelConfig) -> None:
    """What shapes cannot show: the settings under which the reference's tensors mean the same thing."""
    blocks = len(model.clip.visual.transformer.resblocks)
    if cfg.kind != "propy":
        raise ConfigError(f"model.kind: {cfg.kind!r} has no trained tensors; import into a ProPy variant")
    if cfg.interaction != "full" or cfg.single_event:
        raise ConfigError(
            "model.interaction: the reference trains full ancestor-descendant interaction over "
            "the pyramid; set model.interaction: full and model.single_event: false"
        )
    if model.frame_prompts is None or not cfg.text_prompts:
        raise ConfigError(
            "model.frame_prompts / model.text_prompts: the checkpoint has frame prompts and "
            "text prefix prompts projected from them; set model.frame_prompts to its prompt count "
            f"(dimension 1 of {FRAME_PROMPTS}) and model.text_prompts: true"
        )
    if len(model.adapters) != blocks - 1:
        raise ConfigError(
            f"model.adapter_layers: the checkpoint has trained temporal adapters in all {blocks} "
            f"vision blocks (the last has no effect), the config keeps {len(model.adapters)}; set "
            "model.adapters: true and model.adapter_layers: null"
        )
    if len(model.clip.transformer.resblocks) != blocks:
        raise ConfigError(
            f"clip.model: the reference runs only as many text blocks as prompt layers ({blocks}, "
            f"one per vision block); this CLIP has {len(model.clip.transformer.resblocks)}"
        )


def check_quick_gelu(clip_model: str) -> None:
    """The reference's CLIP is OpenAI's, with QuickGELU; open_clip's plain names use nn.GELU."""
    if model_config(clip_model).get("quick_gelu"):
        return
    hint = f"{clip_model}-quickgelu" if open_clip.get_model_config(f"{clip_model}-quickgelu") else None
    raise ConfigError(
        f"clip.model: {clip_model} uses GELU, the reference's CLIP uses QuickGELU; set clip.model "
        f"to {hint or 'a JSON config with quick_gelu: true'}"
    )


def _listed(names: list[str], shown: int = 8) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def split_state(
    state: dict[str, torch.Tensor], clip_names: set[str], expected: set[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(CLIP weights by open_clip name, reference-named trained tensors); one DataError for all
    unknown keys, one for missing ones."""
    carried = {
        k[len(CLIP_PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(CLIP_PREFIX) and k[len(CLIP_PREFIX) :] in clip_names
    }
    ref = {k: v for k, v in state.items() if k in expected or k == TIME_EMBEDDING}
    unknown = sorted(set(state) - set(ref) - {CLIP_PREFIX + k for k in carried})
    if unknown:
        raise DataError(
            f"{len(unknown)} key(s) that neither the CLIP of clip.model nor the reference's ProPy "
            f"has: {_listed(unknown)}; if they are CLIP weights, clip.model is not the checkpoint's "
            "CLIP, else this is not a ProPy reference checkpoint"
        )
    missing = sorted(expected - set(ref))
    if missing:
        raise DataError(
            f"not a complete ProPy reference checkpoint: missing {_listed(missing)} (or clip.model has "
            "more vision blocks than the checkpoint's CLIP)"
        )
    if carried and set(carried) != clip_names:
        raise DataError(f"carries only part of a CLIP: missing clip.{_listed(sorted(clip_names - set(carried)))}")
    return carried, ref


def load_carried_clip(clip: nn.Module, carried: dict[str, torch.Tensor], clip_model: str) -> None:
    """Load the checkpoint's own CLIP weights into ``clip`` (so no download is needed), shapes checked."""
    own = clip.state_dict()
    for name, tensor in carried.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ConfigError(
                f"clip.{name}: shape {tuple(tensor.shape)} in the checkpoint, "
                f"{tuple(own[name].shape)} in clip.model {clip_model}; set clip.model to the "
                "checkpoint's CLIP"
            )
    clip.load_state_dict({k: v.float() for k, v in carried.items()}, strict=True)


def import_reference(state: dict[str, torch.Tensor], params: Params) -> Imported:
    """Check a reference state dict against ``params`` and map it; nothing is written here.

    The CLIP is built from ``clip.model`` without weights: its shapes are all the
    check needs, and a checkpoint that carries its CLIP fills it in.
    """
    check_quick_gelu(params.clip.model)
    model = ProPy(params.model, create_clip(params.clip.model, ""))
    expected = expected_shapes(model, params.model)
    carried, ref = split_state(state, set(model.clip.state_dict()), set(expected))
    check_config(model, params.model)
    check_shapes(ref, expected)
    trainable, dropped = map_trainables(ref, model)
    model.load_trainable_state_dict(trainable)  # the set of names is exactly the model's
    if not carried:
        return Imported(trainable, None, dropped)
    load_carried_clip(model.clip, carried, params.clip.model)
    return Imported(trainable, clip_state(model.clip), dropped)


def clip_state(clip: nn.Module) -> dict[str, torch.Tensor]:
    """The CLIP's weights as a standalone open_clip checkpoint: float32, contiguous, own storage."""
    return {k: v.detach().float().contiguous().clone() for k, v in clip.state_dict().items()}


def save_clip(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Write the CLIP weights byte-for-byte reproducibly: ``torch.save`` to a path names the zip's
    inner folder after the (temporary) file, to a file object it does not, and the fingerprint
    hashes these bytes, so a re-import of the same checkpoint must give the same file."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(weights, f)

    atomic_write_with(path, write)


def write_import(ref: ReferenceCheckpoint, imported: Imported, params: Params, out: Path) -> Params:
    """Write ``clip.pt`` (if carried), then ``best.pt``; return the params its fingerprint names."""
    if imported.clip_weights is not None:
        clip_path = out / "clip.pt"
        save_clip(clip_path, imported.clip_weights)
        params = dataclasses.replace(params, clip=dataclasses.replace(params.clip, pretrained=str(clip_path)))
    save_trained(
        out / "best.pt",
        imported.trainable,
        params,
        epoch=ref.epoch,
        reference={
            "file": ref.path.name,
            "sha256": ref.sha256,
            "epoch": ref.epoch,
            "dropped": [prefix for prefix, _ in imported.dropped],
        },
    )
    return params
