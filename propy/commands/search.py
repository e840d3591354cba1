"""``python -m propy search INDEX_DIR "query"``: the best videos of an index and their moments.

Prints one line per video (rank, score, path, moments in seconds), or ``--json``; ``--html``
also writes a page with a thumbnail strip per moment and a timeline of the event scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from propy.errors import ConfigError
from propy.search.engine import open_index


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", metavar="INDEX_DIR", help="folder written by `python -m propy index`")
    parser.add_argument("query", metavar="QUERY", help="what happens in the moment you look for")
    parser.add_argument("-k", type=int, default=10, help="videos to return (default: 10)")
    parser.add_argument("--moments", type=int, default=3, help="distinct moments listed per video (default: 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--html", metavar="OUT.html", help="also write a page with thumbnails and score timelines")
    parser.add_argument("--params", help="parameters file (default: the one the index was built with)")
    parser.add_argument("--variant", help="variant (default: the one the index was built with)")
    parser.add_argument("--checkpoint", help="trained weights (default: the ones the index was built with)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    if args.k < 1 or args.moments < 1:
        raise ConfigError(f"-k and --moments must be at least 1, got {args.k} and {args.moments}")
    index = open_index(args.index, args.params, args.variant, args.checkpoint, args.device)
    hits = index.search(args.query, args.k, args.moments)
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "index": str(index.folder),
                    "videos": len(index.gallery),
                    "hits": [h.to_json() for h in hits],
                },
                indent=1,
            )
        )
    else:
        print(f"{args.query!r}: top {len(hits)} of {len(index.gallery)} videos")
        for hit in hits:
            moments = ", ".join(f"{m.start:.1f}-{m.end:.1f} s ({m.score:.3f})" for m in hit.moments)
            print(f"{hit.rank:3d}. {hit.score:.4f}  {hit.shown_path}  moments: {moments}")
    if args.html:
        from propy.search.html import write_page

        write_page(Path(args.html), args.query, hits, index.manifest["build"]["variant"], len(index.gallery))
        if not args.json:
            print(f"wrote {args.html}")
    return 0
