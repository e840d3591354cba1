"""What a split's gallery holds against what was annotated: the honest counts every page states.

With ``extract.skip_bad`` a real dataset's unreadable, missing or too short videos are
left out of the frame cache, and with them their queries; a page that counted the
annotation file would then claim a gallery the model never saw. Evaluation records
these counts in its metrics; the pages read them from there or from the cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from propy.config import Layout
from propy.data.annotations import Record, group_by_video, load_annotations
from propy.data.cache import FrameCache

SKIPPED_BY_EXTRACT = "unreadable, missing or too short (skipped by extract: extract.skip_bad)"
NOT_EXTRACTED = "not in the frame cache (re-run extract)"


def gallery_accounting(records: Sequence[Record], cache: FrameCache) -> dict:
    """Videos and queries of a split as annotated, as present in ``cache`` (the gallery), and left out
    with the number of videos per reason."""
    groups = group_by_video(records)
    skipped = set(cache.skipped)
    absent = [v for v in groups if v not in cache]
    lost = sum(len(groups[v]) for v in absent)
    return {
        "annotated": {"videos": len(groups), "queries": len(records)},
        "present": {"videos": len(groups) - len(absent), "queries": len(records) - lost},
        "left_out": {
            "videos": len(absent),
            "queries": lost,
            "why": dict(Counter(SKIPPED_BY_EXTRACT if v in skipped else NOT_EXTRACTED for v in absent)),
        },
    }


def split_gallery(layout: Layout, split: str) -> dict:
    """:func:`gallery_accounting` of ``split``: its annotation file against its frame cache."""
    return gallery_accounting(load_annotations(layout.annotations(split)), FrameCache(layout.cache, split))


def left_out_phrase(accounting: dict) -> str:
    """ "" when nothing was left out, else ", of 2179 annotated videos (10895 queries); 2161 left out: ..."."""
    out = accounting["left_out"]
    if not out["videos"]:
        return ""
    why = "; ".join(f"{n} {reason}" for reason, n in out["why"].items())
    annotated = accounting["annotated"]
    return (
        f", of {annotated['videos']} annotated videos ({annotated['queries']} queries); "
        f"{out['videos']} videos and their {out['queries']} queries left out: {why}"
    )
