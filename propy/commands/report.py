"""``python -m propy report``: execute a report notebook with papermill and render it to HTML.

The work is done in ``propy.reports.render``.
"""

from __future__ import annotations

from pathlib import Path

from propy.config import add_layout_args, layout_from
from propy.reports.render import render


def configure_parser(parser) -> None:
    parser.add_argument("notebook", help="report name: notebooks/<name>.ipynb")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    add_layout_args(parser)
    for name, example in (
        ("metrics", "metrics/synthetic/pooled"),
        ("logs", "logs/train/synthetic"),
        ("results", "results/synthetic/pooled"),
        ("runs", "results/synthetic/runs"),
        ("out", "reports"),
    ):
        parser.add_argument(f"--{name}", required=True, type=Path, help=f"{name} folder, e.g. {example}")
    parser.add_argument(
        "--sweep",
        type=Path,
        help="`propy sweep`'s JSON, shown by the training report when it exists (e.g. metrics/synthetic/sweep.json)",
    )
    parser.add_argument(
        "--gap-sweep",
        type=Path,
        help="`propy gap-sweep`'s JSON, shown by the training report when it exists "
        "(e.g. metrics/synthetic/gap_sweep.json)",
    )


def run(args) -> int:
    folders = {
        name: getattr(args, name) for name in ("metrics", "logs", "results", "runs", "out", "sweep", "gap_sweep")
    }
    html = render(args.notebook, args.params, layout_from(args), folders)
    print(f"report {args.notebook}: {html}")
    return 0
