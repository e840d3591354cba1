"""Shared fixtures: a tiny synthetic benchmark with its frame cache, and params files for it.

Everything is real (mp4 from propy.data.synth, cache from propy.data.extraction, a
random-init tiny open_clip from configs/propy-tiny.json) and small enough for
a test to train on in seconds. Extend by adding functions; keep these stable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from propy.config import SPLITS, Layout, SplitSizes, SynthConfig, build, deep_merge
from propy.data.annotations import group_by_video, load_annotations
from propy.data.extraction import extract_split
from propy.data.synth import generate

REPO = Path(__file__).resolve().parents[1]

TINY_SYNTH = SynthConfig(
    seed=1,
    videos=SplitSizes(train=8, val=4, test=4),
    size=32,
    fps=8,
    events_per_video=[5, 6],
    event_seconds=[0.5, 1.0],
    kind_mix={"appearance": 1.0, "order": 1.0, "composition": 1.0, "context": 1.0},
    composition_events=[2, 3],
    kinds_per_pair=1,  # one query per video (a pair whose kind needs more events than 5-6 gets them)
)
TINY_SIZE = 32  # the input size of configs/propy-tiny.json
TINY_FPS = 8.0
TINY_MAX_FRAMES = 32


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory) -> Path:
    """A folder with ``synthetic/`` (8/4/4 videos) and ``cache/<split>/`` for every split."""
    root = tmp_path_factory.mktemp("tiny_bench")
    data = root / "synthetic"
    generate(TINY_SYNTH, data, progress=False)
    for split in SPLITS:
        names = list(group_by_video(load_annotations(data / "annotations" / f"{split}.jsonl")))
        extract_split(
            names,
            data / "videos",
            ".mp4",
            root / "cache" / split,
            size=TINY_SIZE,
            fps=TINY_FPS,
            max_frames=TINY_MAX_FRAMES,
            progress=False,
        )
    return root


def tiny_params_dict(overrides: dict | None = None) -> dict:
    """The repo's params.yaml shrunk for the tiny bench: random-init tiny CLIP, Nf = 4 (3 events),
    2 epochs of 4 videos, seed 3. Variants: ``tiny`` (ProPy) and ``zs_meanpool`` / ``zs_maxframe``;
    ``overrides`` merge onto the base blocks. The folders go on the command line (``layout_args``)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw = deep_merge(
        raw,
        {
            "dataset": "synthetic",
            "synth": {
                "seed": TINY_SYNTH.seed,
                "size": TINY_SYNTH.size,
                "fps": TINY_SYNTH.fps,
                "videos": {"train": 8, "val": 4, "test": 4},
                "events_per_video": TINY_SYNTH.events_per_video,
                "event_seconds": TINY_SYNTH.event_seconds,
                "kinds_per_pair": TINY_SYNTH.kinds_per_pair,
            },
            "extract": {"fps": TINY_FPS, "max_frames": TINY_MAX_FRAMES},
            "clip": {"model": str(REPO / "configs" / "propy-tiny.json"), "pretrained": ""},
            "pretrain_clip": {"enabled": False},
            "model": {"num_frames": 4, "pyramid": [0, 1], "frame_prompts": 2, "adapter_width": 8, "adapter_kernel": 3},
            "train": {"epochs": 2, "batch_videos": 4, "lr": 1.0e-3, "max_words": 16},
            "eval": {"batch_videos": 4, "batch_queries": 16, "ks": [1, 2, 3, 4]},
            "study": {"trained": ["tiny"], "seeds": [3], "zero_shot": ["zs_meanpool", "zs_maxframe"]},
            "report": {"headline": "tiny"},
            "sweep": {"variant": "tiny", "seed": 3},
        },
    )
    raw["variants"] = {
        "tiny": {},
        "zs_meanpool": {"model": {"kind": "meanpool"}},
        "zs_maxframe": {"model": {"kind": "maxframe"}},
    }
    raw["study"]["ablations"] = {}
    raw["claims"]["tests"] = {
        "vs_maxframe": {
            "claim": "ProPy beats max-frame CLIP",
            "variant": "tiny",
            "against": "zs_maxframe",
            "kind": "all",
            "metric": "SumR",
        }
    }
    return deep_merge(raw, overrides or {})


def tiny_layout(bench: Path) -> Layout:
    return Layout(bench / "synthetic", bench / "cache")


def layout_args(bench: Path) -> list[str]:
    """``--data``/``--cache`` of the tiny bench, as dvc.yaml passes them to a stage."""
    return ["--data", str(bench / "synthetic"), "--cache", str(bench / "cache")]


def write_tiny_params(path: Path, overrides: dict | None = None) -> Path:
    """Write :func:`tiny_params_dict` as a params.yaml at ``path``; returns ``path``."""
    path.write_text(yaml.safe_dump(tiny_params_dict(overrides), sort_keys=False), encoding="utf-8")
    return path


def repo_block(cls, name: str, **changes):
    """Dataclass ``cls`` built (and validated) from the repo's params.yaml block ``name`` with ``changes``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    return build(cls, {**raw[name], **changes}, name)


def write_openai_archive(state_dict: dict, path: Path, quick_gelu: bool = True) -> Path:
    """A TorchScript archive laid out like OpenAI's published ``ViT-B-32.pt``: a scripted module whose
    state dict has open_clip's key names plus OpenAI's three size entries, in float16, with the
    QuickGELU (or GELU) activation in its code. Returns ``path``."""
    import torch

    class QuickGELU(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(1.702 * x)

    class Archive(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = QuickGELU() if quick_gelu else torch.nn.GELU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(x)

    archive = Archive()
    sizes = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}
    entries = {
        **{k: v.detach().half() for k, v in state_dict.items()},
        **{k: torch.tensor(v) for k, v in sizes.items()},
    }
    for key, tensor in entries.items():
        *parents, leaf = key.split(".")
        node = archive
        for part in parents:
            if part not in node._modules:
                node.add_module(part, torch.nn.Module())
            node = node._modules[part]
        node.register_buffer(leaf, tensor.clone())
    torch.jit.save(torch.jit.script(archive), str(path))
    return path


# The longest tests, longest first (make test runs on two workers: each starts one of them at once)
LONGEST = ("test_micro_study_end_to_end",)


def pytest_collection_modifyitems(items):
    """The end-to-end pipeline tests, longest first, each followed by a quick test: with ``make test``'s
    ``-n 2 --maxschedchunk 1`` each worker's first two tests are one long and one quick, and the rest go
    one at a time to whichever worker is free, so the two longest tests run side by side."""
    rank = {name: i for i, name in enumerate(LONGEST)}
    long = sorted((i for i in items if i.get_closest_marker("pipeline")), key=lambda i: rank.get(i.name, len(rank)))
    quick = [i for i in items if not i.get_closest_marker("pipeline")]
    interleaved = [t for pair in zip(long, quick) for t in pair]
    items[:] = interleaved + long[len(quick) :] + quick[len(long) :]


def run_train(params, layout: list[str], out, log, *flags: str, variant: str = "tiny", seed: int = 3) -> int:
    """``python -m propy train`` of ``variant`` in this process; the command's exit code."""
    from propy.cli import main

    args = ["--params", str(params), "--variant", variant, "--seed", str(seed), *layout]
    return main(["train", *args, "--out", str(out), "--log", str(log), *flags])


def run_evaluate(params, layout: list[str], variant: str, metrics, results, *flags: str) -> int:
    """``python -m propy evaluate`` of ``variant`` on the CPU in this process; the command's exit code."""
    from propy.cli import main

    args = ["--params", str(params), "--variant", variant, "--device", "cpu", *layout, *flags]
    return main(["evaluate", *args, "--metrics", str(metrics), "--results", str(results)])
