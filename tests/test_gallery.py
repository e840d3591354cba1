"""propy.data.gallery: the counts of a split annotated, in the frame cache and left out, on a frame cache
that extract wrote with one video unreadable (skip_bad) and one never extracted."""

from __future__ import annotations

from propy.data.annotations import Record
from propy.data.cache import FrameCache
from propy.data.extraction import extract_split
from propy.data.gallery import NOT_EXTRACTED, SKIPPED_BY_EXTRACT, gallery_accounting, left_out_phrase


def test_accounting_counts_what_extract_left_out_and_why(tiny_bench, tmp_path):
    videos = tiny_bench / "synthetic" / "videos"
    names = sorted(p.stem for p in videos.glob("test*.mp4"))[:2]
    (tmp_path / "videos").mkdir()
    for name in names:
        (tmp_path / "videos" / f"{name}.mp4").write_bytes((videos / f"{name}.mp4").read_bytes())
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    extract_split(
        [*names, "broken"],
        tmp_path / "videos",
        ".mp4",
        tmp_path / "cache" / "test",
        size=32,
        fps=8.0,
        max_frames=32,
        skip_bad=True,
        progress=False,
    )
    records = [
        Record(names[0], "q1", "a", 5.0, (0.0, 1.0)),
        Record(names[0], "q2", "b", 5.0, (1.0, 2.0)),
        Record(names[1], "q3", "c", 5.0, (0.0, 1.0)),
        Record("broken", "q4", "d", 5.0, (0.0, 1.0)),
        Record("broken", "q5", "e", 5.0, (1.0, 2.0)),
        Record("never", "q6", "f", 5.0, (0.0, 1.0)),
    ]
    accounting = gallery_accounting(records, FrameCache(tmp_path / "cache", "test"))
    assert accounting == {
        "annotated": {"videos": 4, "queries": 6},
        "present": {"videos": 2, "queries": 3},
        "left_out": {"videos": 2, "queries": 3, "why": {SKIPPED_BY_EXTRACT: 1, NOT_EXTRACTED: 1}},
    }
    assert left_out_phrase(accounting) == (
        f", of 4 annotated videos (6 queries); 2 videos and their 3 queries left out: 1 {SKIPPED_BY_EXTRACT}; "
        f"1 {NOT_EXTRACTED}"
    )
    assert left_out_phrase(gallery_accounting(records[:3], FrameCache(tmp_path / "cache", "test"))) == ""
