import json

import pytest

from propy.data.annotations import (
    Record,
    group_by_video,
    load_annotations,
    write_annotations,
)
from propy.errors import DataError

GOOD = {"vid_name": "v1", "desc_id": "q1", "desc": "a man opens a door", "duration": 10.0, "ts": [2.0, 4.5]}


def line(**changes) -> str:
    """GOOD with fields changed (a value of ... removes the field)."""
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


def write(tmp_path, *lines: str):
    path = tmp_path / "split.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_record_ratio_and_json_round_trip(tmp_path):
    records = [
        Record("v1", "q1", "a man opens a door", 10, [2, 4.5]),
        Record("v2", 7, "rain falls", 4.0, (0.0, 4.0)),
        Record("v1", "q3", "the door closes", 10.0, (9.0, 10.0)),
    ]
    assert records[0].ratio == pytest.approx(0.25)
    assert records[0].ts == (2.0, 4.5) and isinstance(records[0].duration, float)
    assert records[1].desc_id == "7"  # int ids (TVR, QVHighlights) become strings
    assert records[1].to_json() == {
        "vid_name": "v2",
        "desc_id": "7",
        "desc": "rain falls",
        "duration": 4.0,
        "ts": [0.0, 4.0],
    }

    path = tmp_path / "out" / "train.jsonl"
    write_annotations(path, records)
    assert path.read_text(encoding="utf-8").splitlines()[1] == (
        '{"vid_name": "v2", "desc_id": "7", "desc": "rain falls", "duration": 4.0, "ts": [0.0, 4.0]}'
    )
    assert load_annotations(path) == records
    assert [p.name for p in path.parent.iterdir()] == ["train.jsonl"]  # no temp file left behind

    groups = group_by_video(records)
    assert list(groups) == ["v1", "v2"]
    assert [r.desc_id for r in groups["v1"]] == ["q1", "q3"]


def test_loader_skips_blank_lines_and_accepts_int_desc_id(tmp_path):
    path = write(tmp_path, "", line(desc_id=12), "   ", line(desc_id="q2", ts=[0, 10]))
    records = load_annotations(path)
    assert [r.desc_id for r in records] == ["12", "q2"]
    assert records[1].ratio == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"vid_name": ', "invalid JSON (Expecting value at column 14)"),
        ("[1, 2]", "expected a JSON object, got list"),
        (line(type="t"), "field 'type': unknown field (expected exactly vid_name, desc_id, desc, duration, ts)"),
        (line(ts=...), "field 'ts': missing"),
        (line(vid_name=3), "field 'vid_name': expected a non-empty string, got 3"),
        (line(desc_id=1.5), "field 'desc_id': expected a non-empty string or an integer, got 1.5"),
        (line(desc_id=True), "field 'desc_id': expected a non-empty string or an integer, got True"),
        (line(desc="  "), "field 'desc': expected a non-empty string, got '  '"),
        (line(duration=0), "field 'duration': expected a number > 0, got 0"),
        (line(duration="10"), "field 'duration': expected a number > 0, got '10'"),
        (
            '{"vid_name": "v1", "desc_id": "q2", "desc": "d", "duration": NaN, "ts": [0, 1]}',
            "field 'duration': expected a number > 0, got nan",
        ),
        (line(ts="2-4"), "field 'ts': expected a list of two numbers [start, end], got '2-4'"),
        (line(ts=[1, 2, 3]), "field 'ts': expected a list of two numbers [start, end], got [1, 2, 3]"),
        (line(ts=[1, "2"]), "field 'ts': expected a list of two numbers [start, end], got [1, '2']"),
        (line(ts=[2, 11]), "field 'ts': expected 0 <= start <= end <= duration, got [2, 11] with duration 10"),
        (line(ts=[-1, 3]), "field 'ts': expected 0 <= start <= end <= duration, got [-1, 3] with duration 10"),
        (line(ts=[5, 4]), "field 'ts': expected 0 <= start <= end <= duration, got [5, 4] with duration 10"),
        (line(ts=[1.0, 1.0]), "field 'ts': zero-length moment (start = end): it can never be localised, got [1, 1]"),
        (line(desc_id="q0"), "field 'desc_id': duplicate: 'q0' is also used at line 1"),
        (
            line(duration=12.0, ts=[0, 1]),
            "field 'duration': differs from an earlier record of the same video: 12 here, 10 at line 1 for video 'v1'",
        ),
    ],
)
def test_loader_names_file_line_and_field(tmp_path, bad, message):
    path = write(tmp_path, line(desc_id="q0"), "", bad)
    with pytest.raises(DataError) as err:
        load_annotations(path)
    assert str(err.value) == f"{path}:3: {message}"


def test_loader_rejects_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.jsonl: file not found$"):
        load_annotations(tmp_path / "nothing.jsonl")
    path = write(tmp_path, "", "  ")
    with pytest.raises(DataError) as err:
        load_annotations(path)
    assert str(err.value) == f"{path}: no annotation records (the file is empty)"


def test_writer_refuses_what_the_loader_would_reject(tmp_path):
    path = tmp_path / "out.jsonl"
    a = Record("v1", "q1", "d", 10.0, (0.0, 1.0))
    with pytest.raises(DataError) as err:
        write_annotations(path, [a, Record("v2", "q1", "e", 5.0, (0.0, 1.0))])
    assert str(err.value) == f"{path}: record 2: field 'desc_id': duplicate: 'q1' is also used at record 1"
    with pytest.raises(DataError, match="no records"):
        write_annotations(path, [])
    assert not path.exists()


def test_record_constructor_validates():
    with pytest.raises(
        DataError, match=r"field 'ts': expected 0 <= start <= end <= duration, got \[0, 6\] with duration 5"
    ):
        Record("v", "q", "d", 5.0, (0.0, 6.0))
