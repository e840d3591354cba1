"""``python -m propy headline``: rewrite the dataset's headline table in README.md from its pooled metrics.

The work is done in ``propy.reports.headline``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from propy.config import load_params
from propy.reports.headline import headline_markdown, replace_block
from propy.runtime.files import atomic_write_text


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--metrics", required=True, type=Path, help="pooled metrics, e.g. metrics/synthetic/pooled")
    parser.add_argument("--readme", required=True, type=Path, help="the file whose headline block to rewrite")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    block = headline_markdown(params, args.metrics)
    text = replace_block(args.readme.read_text(encoding="utf-8"), block, str(args.readme), params.dataset)
    atomic_write_text(args.readme, text)
    print(f"headline: {args.readme} updated from {args.metrics}")
    return 0
