"""``python -m propy <command>``: one sub-command per pipeline stage.

Each command lives in its own module, which defines ``configure_parser(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``--help`` and light commands do not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from propy import __version__
from propy.errors import PropyError
from propy.runtime.locks import stop_with_parent

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("propy.commands.synth", "generate the synthetic PRVR benchmark (mp4 + annotations)"),
    "convert": ("propy.commands.convert", "convert a public dataset's annotations to the canonical jsonl"),
    "convert-weights": (
        "propy.commands.convert_weights",
        "convert OpenAI's TorchScript CLIP archive to an open_clip state dict",
    ),
    "split-val": ("propy.commands.split_val", "split a canonical train.jsonl into train and val by video (seeded)"),
    "extract": ("propy.commands.extract", "decode every video once into the uint8 frame cache"),
    "features": ("propy.commands.features", "embed every cached frame with the frozen CLIP once (MS-SL's input)"),
    "pretrain-clip": ("propy.commands.pretrain_clip", "train the small CLIP on synthetic frames and captions"),
    "model-info": ("propy.commands.model_info", "print the pyramid, parameter counts and forward times"),
    "train": ("propy.commands.train", "train ProPy (one variant)"),
    "evaluate": ("propy.commands.evaluate", "evaluate a trained variant or a zero-shot baseline"),
    "headline": ("propy.commands.headline", "rewrite README.md's headline table from the pooled metrics"),
    "sweep": ("propy.commands.sweep", "train a grid of settings once each and score them on the validation split"),
    "gap-sweep": (
        "propy.commands.gap_sweep",
        "pre-train the small CLIP at each caption gap; score zero-shot and trained models on validation",
    ),
    "pool": ("propy.commands.pool", "pool each variant's runs (one per seed) and compare variants with intervals"),
    "import-reference": (
        "propy.commands.import_reference",
        "import a checkpoint of the authors' ProPy as a propy checkpoint",
    ),
    "index": ("propy.commands.index", "encode a folder of videos (recursively, incrementally) for `propy search`"),
    "search": ("propy.commands.search", "search an index by text: ranked videos and their best moments"),
    "bench": ("propy.commands.bench", "measure throughput, memory and ProPy/CLIP encode ratios"),
    "report": ("propy.commands.report", "execute a report notebook with papermill and render it to HTML"),
    "check-params": (
        "propy.commands.check_params",
        "validate params.yaml (and every variant) and print the resolved values",
    ),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` command's module is imported to add its options."""
    parser = argparse.ArgumentParser(prog="propy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == selected:
            _load(module_name).configure_parser(p)
    return parser


def _load(module_name: str):
    return importlib.import_module(module_name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    stop_with_parent()  # under DVC: killing dvc must not leave this stage running as an orphan
    try:
        return int(_load(args._module).run(args) or 0)
    except PropyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
