"""``python -m propy extract``: decode every video once into the uint8 frame cache.

The work is done in ``propy.data.extraction``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from propy.config import SPLITS, Layout, add_layout_args, load_params
from propy.data.annotations import group_by_video, load_annotations
from propy.data.cache import MANIFEST
from propy.data.extraction import BadVideos, extract_split, listing
from propy.errors import ConfigError
from propy.model.configs import model_input_size
from propy.stage_reads import guard


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", default="params.yaml", help="parameters file (blocks 'extract', 'datasets', 'clip')"
    )
    add_layout_args(parser, cache=False)
    parser.add_argument("--out", type=Path, required=True, help="the frame cache folder to write, e.g. data/cache")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all", help="which split's videos (default all)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default: the CLIP model's input size)")


def run(args: argparse.Namespace) -> int:
    params = guard(load_params(args.params), "extract")
    cfg, layout = params.extract, Layout(args.data, args.out)
    size = args.size if args.size is not None else model_input_size(params)
    if size < 1:
        raise ConfigError(f"--size: expected a positive number of pixels, got {size}")
    bad: dict[str, str] = {}
    for split in SPLITS if args.split == "all" else (args.split,):
        names = group_by_video(load_annotations(layout.annotations(split)))
        out_dir = layout.cache_split(split)
        started = time.perf_counter()
        try:
            result = extract_split(
                list(names),
                layout.videos,
                params.data.video_ext,
                out_dir,
                size=size,
                fps=cfg.fps,
                max_frames=cfg.max_frames,
                jpeg_quality=cfg.jpeg_quality,
                durations={vid: records[0].duration for vid, records in names.items()},
                duration_tolerance=cfg.duration_tolerance,
                skip_bad=cfg.skip_bad,
                desc=f"extract {split}",
                shared=tuple(layout.cache_split(other) for other in SPLITS if other != split),
            )
        except BadVideos as exc:
            bad.update(exc.bad)
            continue
        seconds = time.perf_counter() - started
        frames = sum(v["num_frames"] for v in result.manifest["videos"].values())
        print(
            f"extract {split}: {len(names)} videos -> {out_dir} ({len(result.decoded)} decoded, "
            f"{len(result.reused)} already cached, {len(result.linked)} linked from another split, "
            f"{len(result.skipped)} skipped; {frames} frames of "
            f"{size}x{size}) in {seconds:.1f}s"
        )
        if result.repaired:
            print(f"  decoded again (their cached frames were damaged):\n{listing(result.repaired)}")
        if result.skipped:
            print(f"  skipped (listed in {out_dir / MANIFEST}):\n{listing(result.skipped)}")
    if bad:
        raise BadVideos(bad)
    return 0
