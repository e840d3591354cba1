"""`propy split-val`: a seeded, video-level hold-out of the training annotations."""

from __future__ import annotations

import pytest

from propy.cli import main
from propy.data.annotations import Record, load_annotations, write_annotations


def records(videos=10, per_video=3):
    return [
        Record(vid_name=f"v{v:02d}", desc_id=f"{v}-{q}", desc=f"query {q} of {v}", duration=30.0, ts=(1.0, 2.0))
        for v in range(videos)
        for q in range(per_video)
    ]


def split(tmp_path, source, *extra, tag="a"):
    train, val = tmp_path / f"{tag}-train.jsonl", tmp_path / f"{tag}-val.jsonl"
    code = main(["split-val", str(source), "--out-train", str(train), "--out-val", str(val), *extra])
    return code, train, val


def test_split_holds_out_whole_videos_by_seed(tmp_path, capsys):
    source = tmp_path / "full.jsonl"
    write_annotations(source, records())
    code, train, val = split(tmp_path, source, "--videos", "3", "--seed", "7")
    assert code == 0 and "7 videos / 21 queries" in capsys.readouterr().out
    train_r, val_r = load_annotations(train), load_annotations(val)
    held = {r.vid_name for r in val_r}
    assert len(held) == 3 and len(val_r) == 9 and not held & {r.vid_name for r in train_r}
    assert sorted(train_r + val_r, key=lambda r: r.desc_id) == sorted(records(), key=lambda r: r.desc_id)
    # the same seed gives the same split whatever the order of the file; another seed another one
    write_annotations(tmp_path / "reversed.jsonl", records()[::-1])
    assert {
        r.vid_name
        for r in load_annotations(
            split(tmp_path, tmp_path / "reversed.jsonl", "--videos", "3", "--seed", "7", tag="b")[2]
        )
    } == held
    others = [
        {
            r.vid_name
            for r in load_annotations(split(tmp_path, source, "--videos", "3", "--seed", str(s), tag=f"s{s}")[2])
        }
        for s in range(4)
    ]
    assert any(o != held for o in others)


@pytest.mark.parametrize("videos", ["0", "10"])
def test_split_refuses_an_empty_side(tmp_path, capsys, videos):
    source = tmp_path / "full.jsonl"
    write_annotations(source, records())
    assert split(tmp_path, source, "--videos", videos)[0] == 2
    assert "--videos: expected 1 to 9 (the file has 10 videos)" in capsys.readouterr().err


def test_split_refuses_to_overwrite_its_source(tmp_path, capsys):
    source = tmp_path / "train.jsonl"
    write_annotations(source, records())
    assert (
        main(
            [
                "split-val",
                str(source),
                "--videos",
                "2",
                "--out-train",
                str(source),
                "--out-val",
                str(tmp_path / "val.jsonl"),
            ]
        )
        == 2
    )
    assert "the source would be overwritten" in capsys.readouterr().err
    assert len(load_annotations(source)) == 30
