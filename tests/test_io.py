"""Atomic writes: the target appears whole or not at all, with ordinary permissions."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from propy.runtime.files import atomic_save_npy, atomic_write_json, atomic_write_text, atomic_write_with

REPO = Path(__file__).resolve().parents[1]


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
    from propy.runtime.files import read_json

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
    from propy.runtime.files import iter_jsonl

    with pytest.raises(DataError, match=r"none\.jsonl: written by evaluate"):
        list(iter_jsonl(tmp_path / "none.jsonl", "written by evaluate"))
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n[2]\n')
    assert list(iter_jsonl(good, "unused")) == [(f"{good}:1", {"a": 1}), (f"{good}:3", [2])]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_jsonl(bad, "unused"))


def test_a_write_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Power loss safety: the temporary file reaches the disk before it takes the final name."""
    import propy.runtime.files as io

    events = []
    real_fsync, real_replace = io._fsync, os.replace
    monkeypatch.setattr(
        io,
        "_fsync",
        lambda path, directory=False: (
            events.append(("fsync", Path(path).name, directory)),
            real_fsync(path, directory),
        ),
    )
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b)))
    atomic_write_text(tmp_path / "a.txt", "x")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(".a.txt.") and events[2] == ("fsync", tmp_path.name, True)


def test_stale_temps_are_removed_by_prepare_output_and_nothing_else(tmp_path):
    from propy.runtime.files import prepare_output

    folder = tmp_path / "models" / "full"
    (folder / "sub").mkdir(parents=True)
    stale = [folder / ".last.pt.ab_12xyz.tmp", folder / "sub" / ".x.npy.q0w9e8r7.tmp"]
    kept = [folder / "last.pt", folder / ".keep.tmp", folder / "a.tmp", folder / ".lock"]
    for path in stale + kept:
        path.write_text("x")
    log = tmp_path / "full.json"
    log_stale, other = tmp_path / ".full.json.abcdefgh.tmp", tmp_path / ".full.json.bak.abcdefgh.tmp"
    log_stale.write_text("x")
    other.write_text("x")
    prepare_output(folder, folder=True)
    prepare_output(log)
    assert not any(p.exists() for p in stale + [log_stale])
    assert all(p.exists() for p in kept + [other])  # another file's temp is not this output's


@pytest.mark.parametrize(
    "code, cause",
    [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
    ],
)
def test_a_failed_write_names_the_file_and_the_cause(tmp_path, monkeypatch, code, cause):
    import propy.runtime.files as io
    from propy.errors import DataError
    from propy.runtime.files import prepare_output

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io, "_fsync", fail)
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path / 'out.json'))}: cannot write: {cause}"):
        atomic_write_json(tmp_path / "out.json", {"v": 1})
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path))}: cannot write: {cause}"):
        prepare_output(tmp_path / "models" / "clip.pt")  # probed where it will be created
    assert list(tmp_path.iterdir()) == []  # no temp left behind, nothing created


def test_a_writer_hitting_a_full_disk_is_a_data_error(tmp_path):
    """A real ENOSPC (/dev/full) raised inside a library writer names the target, not the temp."""
    from propy.errors import DataError

    def to_full_disk(tmp):
        with open("/dev/full", "wb") as f:
            f.write(b"x" * 65536)
            f.flush()

    with pytest.raises(
        DataError, match=r"out\.npy: cannot write: no space left on the device; free some space \(ENOSPC\)"
    ):
        atomic_write_with(tmp_path / "out.npy", to_full_disk)


def test_prepare_output_refuses_a_folder_for_a_file_and_the_reverse(tmp_path):
    from propy.errors import DataError
    from propy.runtime.files import prepare_output

    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"dir: expected a file path, found a folder"):
        prepare_output(tmp_path / "dir")
    with pytest.raises(DataError, match=r"file: expected a folder here, found a file"):
        prepare_output(tmp_path / "file", folder=True)
    with pytest.raises(DataError, match=r"file: is a file, so .*file/sub/out\.json cannot be created"):
        prepare_output(tmp_path / "file" / "sub" / "out.json")


def test_a_short_array_write_names_its_cause(tmp_path):
    """Issue 23 case 8: numpy's writer reported "100000 requested and 8064 written", not why. A file
    size limit (``ulimit -f``, in a child process) makes the write stop short for real."""
    script = (
        "import resource, signal, sys\n"
        "import numpy as np\n"
        "from propy.errors import DataError\n"
        "from propy.runtime.files import atomic_save_npy\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    atomic_save_npy(sys.argv[1], np.zeros((100, 1000), np.uint8))\n"
        "except DataError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "frames.npy")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    assert out == (
        f"{tmp_path / 'frames.npy'}: cannot write: file too large for the file system or the process's "
        "file size limit (ulimit -f) (EFBIG)\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        np.zeros((0, 3), np.uint8),
        np.array(5),
        np.zeros((4, 6, 6, 3), np.uint8)[:, ::2],
    ],
)
def test_saved_arrays_are_numpy_save_bytes(tmp_path, array):
    """The frame cache's .npy files keep their bytes (and so DVC's hash of the cache)."""
    expected = io.BytesIO()
    np.save(expected, np.ascontiguousarray(array) if array.ndim else array)
    atomic_save_npy(tmp_path / "a.npy", array)
    assert (tmp_path / "a.npy").read_bytes() == expected.getvalue()
