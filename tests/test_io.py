"""Atomic writes: the target appears whole or not at all, with ordinary permissions."""
from __future__ import annotations

import os
import stat

import pytest

from propy.io import atomic_write_json, atomic_write_text, atomic_write_with


def test_written_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_failed_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_with(target, broken)
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_read_json_names_the_file_and_line(tmp_path):
    from propy.errors import ConfigError, DataError
    from propy.io import read_json

    with pytest.raises(DataError, match=r"nothere\.json: written by synth"):
        read_json(tmp_path / "nothere.json", "written by synth")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}\n')
    with pytest.raises(ConfigError, match=r"bad\.json: line 3: not valid JSON"):
        read_json(bad, "unused", ConfigError)
    atomic_write_json(tmp_path / "ok.json", {"a": [1, 2]})
    assert read_json(tmp_path / "ok.json", "unused") == {"a": [1, 2]}


def test_iter_jsonl_skips_blank_lines_and_names_the_bad_line(tmp_path):
    from propy.errors import DataError
    from propy.io import iter_jsonl

    with pytest.raises(DataError, match=r"none\.jsonl: written by evaluate"):
        list(iter_jsonl(tmp_path / "none.jsonl", "written by evaluate"))
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n[2]\n')
    assert list(iter_jsonl(good, "unused")) == [(f"{good}:1", {"a": 1}), (f"{good}:3", [2])]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_jsonl(bad, "unused"))
