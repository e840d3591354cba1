import json
from collections import Counter

import pytest

from propy.cli import main
from propy.data.annotations import Record, load_annotations
from propy.data.convert import (
    CLAMPED,
    MERGED,
    WHOLE_VIDEO,
    convert_activitynet,
    convert_charades,
    convert_qvhighlights,
    convert_tvr,
    read_charades_durations,
)
from propy.data.video import probe_duration
from propy.errors import DataError


def jsonl(*items) -> str:
    return "\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n"


CLIP = "s01e01_seg02_clip_00"
TVR = jsonl(
    {"desc_id": 1, "desc": "Sheldon sits down.", "vid_name": CLIP, "duration": 60.0, "ts": [10.5, 20.0], "type": "v"},
    "",
    {"desc_id": 2, "desc": " Penny waves. ", "vid_name": CLIP, "duration": 60.0, "ts": [55, 61.3], "type": "vt"},
    {"desc_id": 3, "desc": "Leonard laughs.", "vid_name": "s02", "duration": 30, "type": "t"},
    "{oops",
    {"desc_id": 4, "desc": "", "vid_name": CLIP, "duration": 60.0, "ts": [1, 2]},
    {"desc_id": 1, "desc": "again", "vid_name": CLIP, "duration": 60.0, "ts": [1, 2]},
    [1],
    {"desc_id": 5, "desc": "no video", "duration": 60.0, "ts": [1, 2]},
    {"desc_id": 6, "desc": "longer", "vid_name": CLIP, "duration": 61.0, "ts": [1, 2]},
)
TVR_SKIPS = (
    ("line 4", "field 'ts': missing"),
    ("line 5", "invalid JSON"),
    ("line 6", "field 'desc': expected a non-empty string"),
    ("line 7", "field 'desc_id': duplicate"),
    ("line 8", "not a JSON object"),
    ("line 9", "field 'vid_name': missing"),
    ("line 10", "field 'duration': differs from an earlier record of the same video"),
)


def test_tvr_drops_extra_fields_clamps_and_skips_with_reasons():
    records, report = convert_tvr(TVR)
    assert records == [
        Record(CLIP, "1", "Sheldon sits down.", 60.0, (10.5, 20.0)),
        Record(CLIP, "2", "Penny waves.", 60.0, (55.0, 60.0)),
    ]
    assert (report.videos, report.queries, report.clamped) == (1, 2, 1)
    assert report.skips == TVR_SKIPS
    assert report.skipped["field 'ts': missing"] == 1 and sum(report.skipped.values()) == 7


def test_a_zero_length_moment_is_skipped_like_other_bad_moments():
    """Issue 23 case 5: ``"ts": [1.0, 1.0]`` used to pass convert, extract and evaluate."""
    records, report = convert_tvr(
        jsonl({**json.loads(TVR.splitlines()[0]), "desc_id": 7, "ts": [1.0, 1.0]}, TVR.splitlines()[0])
    )
    assert [r.desc_id for r in records] == ["1"]
    assert report.skips == (("line 1", "field 'ts': zero-length moment (start = end): it can never be localised"),)


def test_tvr_missing_ts_whole_uses_the_whole_video():
    records, report = convert_tvr(TVR, missing_ts="whole")
    assert records[2] == Record("s02", "3", "Leonard laughs.", 30.0, (0.0, 30.0))
    assert report.adjusted == Counter({CLAMPED: 1, WHOLE_VIDEO: 1})
    assert (report.videos, report.queries, len(report.skips)) == (2, 3, 6)


def test_report_lines_elide_long_lists_of_locations():
    _, report = convert_tvr(jsonl(*["{oops"] * 4, TVR.splitlines()[0]))
    assert report.lines() == [
        "1 queries of 1 videos",
        "moment clamped into [0, duration]: 0",
        "skipped 4: invalid JSON (line 1, line 2, line 3, ...)",
    ]
    with pytest.raises(ValueError, match="missing_ts must be one of"):
        convert_tvr(TVR, missing_ts="hole")


def test_a_conversion_with_no_record_is_an_error():
    with pytest.raises(DataError) as err:
        convert_tvr(jsonl("{oops", "", [1], "{oops"))
    assert str(err.value) == (
        "no record could be converted, all 3 items skipped (2x invalid JSON; 1x not a JSON object)"
    )
    with pytest.raises(DataError, match="the input has no items"):
        convert_tvr("\n\n")


def test_activitynet_one_record_per_sentence():
    text = json.dumps(
        {
            "v_a": {
                "duration": 20.0,
                "timestamps": [[0, 5.5], [3, 25], [8, 6], [1, 2]],
                "sentences": ["A man walks in.", "  He sits down. ", "He stands.", "   "],
            },
            "v_b": {"duration": 10, "timestamps": [[0, 1]], "sentences": ["one", "two"]},
            "v_c": {"duration": 10, "timestamps": [[12, 15], [-2, 3]], "sentences": ["outside", "starts early"]},
            "v_d": [1],
            "v_e": {"duration": 10, "sentences": ["no timestamps"]},
        }
    )
    records, report = convert_activitynet(text)
    assert records == [
        Record("v_a", "v_a#0", "A man walks in.", 20.0, (0.0, 5.5)),
        Record("v_a", "v_a#1", "He sits down.", 20.0, (3.0, 20.0)),
        Record("v_c", "v_c#1", "starts early", 10.0, (0.0, 3.0)),
    ]
    assert report.skips == (
        ("video v_a sentence 2", "field 'timestamps': start after end"),
        ("video v_a sentence 3", "field 'desc': expected a non-empty string"),
        ("video v_b", "field 'timestamps': expected a list as long as 'sentences'"),
        ("video v_c sentence 0", "field 'timestamps': moment lies outside the video [0, duration]"),
        ("video v_d", "not a JSON object"),
        ("video v_e", "field 'timestamps': missing"),
    )
    assert (report.videos, report.queries, report.clamped) == (2, 3, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "expected a JSON object keyed by video id, got list"),
        ('{"v": ', "invalid JSON (Expecting value at line 1 column 7)"),
    ],
)
def test_activitynet_rejects_a_file_of_the_wrong_shape(text, message):
    with pytest.raises(DataError) as err:
        convert_activitynet(text)
    assert str(err.value) == message


CHARADES = (
    "\n".join(
        [
            "AO8RW 0.0 6.9##a person is putting a book on a shelf.",
            "AO8RW 5.2 40.0##person opens the closet door .",
            "",
            "Y6R7T 1.0 4.5##  the person eats a sandwich  ",
            "garbage line",
            "ZZZZZ 1 2##unknown video",
            "Y6R7T one 4.5##bad start",
            "Y6R7T 3 4##",
        ]
    )
    + "\n"
)


def test_charades_ids_follow_line_numbers_and_bad_lines_are_skipped():
    records, report = convert_charades(CHARADES, {"AO8RW": 33.67, "Y6R7T": 30.0}.get)
    assert records == [
        Record("AO8RW", "AO8RW#1", "a person is putting a book on a shelf.", 33.67, (0.0, 6.9)),
        Record("AO8RW", "AO8RW#2", "person opens the closet door .", 33.67, (5.2, 33.67)),
        Record("Y6R7T", "Y6R7T#4", "the person eats a sandwich", 30.0, (1.0, 4.5)),
    ]
    assert report.skips == (
        ("line 5", "malformed line: expected 'video_id start end##sentence'"),
        ("line 6", "no duration known for the video"),
        ("line 7", "field 'start': expected a number"),
        ("line 8", "field 'desc': expected a non-empty string"),
    )
    assert (report.videos, report.queries, report.clamped) == (2, 3, 1)


def test_charades_durations_csv(tmp_path):
    good = tmp_path / "Charades_v1_test.csv"
    good.write_text("id,subject,scene,length\nAO8RW,S1,Kitchen,33.67\nY6R7T,S2,Hall,30\n", encoding="utf-8")
    assert read_charades_durations(good) == {"AO8RW": 33.67, "Y6R7T": 30.0}

    bad = tmp_path / "bad.csv"
    bad.write_text("id,length\nAO8RW,33\nY6R7T,abc\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_charades_durations(bad)
    assert str(err.value) == f"{bad}:3: field 'length': expected a number, got 'abc'"

    bad.write_text("id,scene\nAO8RW,Hall\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_charades_durations(bad)
    assert str(err.value) == f"{bad}: expected a csv with columns 'id' and 'length', got ['id', 'scene']"


def test_charades_cli_reads_durations_from_several_csvs(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("id,length\nAO8RW,33.67\n", encoding="utf-8")
    test.write_text("id,length\nY6R7T,30\n", encoding="utf-8")
    sta, out = tmp_path / "sta.txt", tmp_path / "out.jsonl"
    sta.write_text(CHARADES, encoding="utf-8")
    argv = ["convert", "charades", str(sta), str(out), "--durations", str(train), "--durations", str(test)]
    assert main(argv) == 0
    assert [r.desc_id for r in load_annotations(out)] == ["AO8RW#1", "AO8RW#2", "Y6R7T#4"]


def write_video(path, frames: int, fps: int = 10) -> None:
    av = pytest.importorskip("av")
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            container.mux(stream.encode(black))
        container.mux(stream.encode())


def test_charades_cli_reads_durations_from_videos(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "AO8RW.mp4", frames=25)
    (videos / "BROKN.mp4").write_bytes(b"not a video")
    assert probe_duration(videos / "AO8RW.mp4") == pytest.approx(2.5)
    assert probe_duration(videos / "BROKN.mp4") is None
    assert probe_duration(videos / "NOVID.mp4") is None

    sta = tmp_path / "charades_sta_test.txt"
    sta.write_text("AO8RW 0.5 3.0##a person sits.\nNOVID 0 1##x\nBROKN 0 1##y\n", encoding="utf-8")
    out = tmp_path / "test.jsonl"
    assert main(["convert", "charades", str(sta), str(out), "--videos", str(videos)]) == 0
    [record] = load_annotations(out)
    assert (record.desc_id, record.ts) == ("AO8RW#1", (0.5, record.duration))
    assert record.duration == pytest.approx(2.5)
    assert "skipped 2: no duration known for the video (line 2, line 3)" in capsys.readouterr().out


QV = jsonl(
    {
        "qid": 9,
        "query": "a dog runs",
        "vid": "vidA_60.0_210.0",
        "duration": 150,
        "relevant_windows": [[10, 20]],
        "saliency_scores": [[1, 2, 3]],
    },
    {
        "qid": 10,
        "query": "people cheer",
        "vid": "vidA_60.0_210.0",
        "duration": 150,
        "relevant_windows": [[40, 50], [10, 14], [70, 152]],
    },
    {"qid": 11, "query": "test query", "vid": "vidB", "duration": 150},
    {"qid": 12, "query": "empty windows", "vid": "vidB", "duration": 150, "relevant_windows": []},
    {"qid": 13, "query": "inverted", "vid": "vidB", "duration": 150, "relevant_windows": [[30, 20]]},
)


def test_qvhighlights_merges_windows_into_one_span():
    records, report = convert_qvhighlights(QV)
    assert records == [
        Record("vidA_60.0_210.0", "9", "a dog runs", 150.0, (10.0, 20.0)),
        Record("vidA_60.0_210.0", "10", "people cheer", 150.0, (10.0, 150.0)),
    ]
    assert report.adjusted == Counter({MERGED: 1, CLAMPED: 1})
    assert report.skips == (
        ("line 3", "field 'relevant_windows': missing"),
        ("line 4", "field 'relevant_windows': expected a non-empty list of [start, end]"),
        ("line 5", "field 'relevant_windows': start after end"),
    )
    whole, report = convert_qvhighlights(QV, missing_ts="whole")
    assert whole[2] == Record("vidB", "11", "test query", 150.0, (0.0, 150.0))
    assert report.adjusted[WHOLE_VIDEO] == 1


def test_cli_converts_tvr_and_prints_the_counts(tmp_path, capsys):
    src, out = tmp_path / "tvr_train_release.jsonl", tmp_path / "ann" / "train.jsonl"
    src.write_text(TVR, encoding="utf-8")
    assert main(["convert", "tvr", str(src), str(out)]) == 0
    assert load_annotations(out) == convert_tvr(TVR)[0]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"convert tvr: {src} -> {out}"
    assert printed[1:4] == [
        "  2 queries of 1 videos",
        "  moment clamped into [0, duration]: 1",
        "  skipped 1: field 'ts': missing (line 4)",
    ]
    assert len(printed) == 10


@pytest.mark.parametrize(
    "argv, content, message",
    [
        (["tvr"], None, "{src}: file not found"),
        (["activitynet"], "[1, 2]", "{src}: expected a JSON object keyed by video id, got list"),
        (["tvr"], "{oops\n", "{src}: no record could be converted, all 1 items skipped (1x invalid JSON)"),
        (
            ["charades"],
            "AO8RW 0 1##x\n",
            "convert charades needs --durations CSV or --videos DIR (Charades-STA has no durations)",
        ),
        (["charades", "--durations", "{tmp}/none.csv"], "AO8RW 0 1##x\n", "{tmp}/none.csv: file not found"),
        (["tvr", "--videos", "{tmp}"], "", "--durations and --videos only apply to charades"),
        (["activitynet", "--missing-ts", "whole"], "{}", "--missing-ts only applies to tvr and qvhighlights"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_file(tmp_path, capsys, argv, content, message):
    src, out = tmp_path / "release.txt", tmp_path / "out.jsonl"
    if content is not None:
        src.write_text(content, encoding="utf-8")
    source, *options = [a.format(tmp=tmp_path) for a in argv]
    assert main(["convert", source, str(src), str(out), *options]) == 2
    assert capsys.readouterr().err == f"error: {message.format(src=src, tmp=tmp_path)}\n"
    assert not out.exists()


def test_cli_tvr_test_file_without_missing_ts_says_what_to_add(tmp_path, capsys):
    src, out = tmp_path / "tvr_test_release.jsonl", tmp_path / "test.jsonl"
    src.write_text('{"vid_name": "v1", "desc_id": 1, "desc": "a man walks", "duration": 10.0}\n', encoding="utf-8")
    assert main(["convert", "tvr", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert "all 1 items skipped (1x field 'ts': missing)" in err and "add --missing-ts whole" in err
    assert main(["convert", "tvr", str(src), str(out), "--missing-ts", "whole"]) == 0
    assert load_annotations(out)[0].ts == (0.0, 10.0)


def test_cli_a_folder_as_out_is_named_before_converting(tmp_path, capsys):
    src, folder = tmp_path / "tvr.jsonl", tmp_path / "annotations"
    src.write_text(TVR, encoding="utf-8")
    folder.mkdir()
    assert main(["convert", "tvr", str(src), str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder}: expected a file path, found a folder; give a file name (e.g. {folder / 'out.json'})\n"
    )
    assert list(folder.iterdir()) == []


def test_tvr_test_public_is_refused_in_one_line_saying_why():
    # the test-public release's items: a query with no video and no moment (scored on TVR's server)
    public = jsonl(*[{"desc_id": i, "desc": f"someone does thing {i}", "type": "v"} for i in range(3)])
    with pytest.raises(DataError) as err:
        convert_tvr(public, missing_ts="whole")
    message = str(err.value)
    assert "\n" not in message
    assert "none of the 3 queries names its video" in message and "tvr_val_release.jsonl" in message
