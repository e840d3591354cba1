"""Atomic file writes (a reader never sees a half-written output) and checked JSON reads.

Each writer puts the content in a temporary file ``.<name>.<8 random chars>.tmp`` in the
target's directory, flushes it to disk (``fsync``), renames it over the target
(``os.replace`` is atomic on POSIX) and syncs the directory, so neither a crash nor a
power loss leaves a short or empty file under the final name. A process killed between
the two steps leaves its temporary file behind: :func:`prepare_output`, which each stage
calls on its outputs before it starts working, removes such leftovers and checks that the
output can be written at all. A failed write (disk full, permission denied, read-only
file system) is a DataError naming the file and the cause, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
_RANDOM = r"\.[a-z0-9_]{8}\.tmp$"  # tempfile.mkstemp's 8 random characters, then TEMP_SUFFIX
_CAUSES = {
    errno.ENOSPC: "no space left on the device; free some space",
    errno.EDQUOT: "disk quota exceeded; free some space",
    errno.EACCES: "permission denied; make the folder writable or choose another output path",
    errno.EPERM: "operation not permitted; make the folder writable or choose another output path",
    errno.EROFS: "read-only file system; choose an output path on a writable disk",
    errno.EFBIG: "file too large for the file system or the process's file size limit (ulimit -f)",
}


def write_error(path: str | os.PathLike, exc: OSError):
    """The DataError for an OSError met while writing ``path``: the file, the cause, what to do."""
    from propy.errors import DataError

    code = errno.errorcode.get(exc.errno or 0, "")
    cause = _CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
    return DataError(f"{path}: cannot write: {cause}" + (f" ({code})" if code else ""))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not (directory and exc.errno == errno.EINVAL):  # some file systems cannot sync a folder
            raise
    finally:
        os.close(fd)


def _temp_for(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success sync it, rename it to ``path`` and sync
    the folder. An OSError on the way (the caller's writes included) becomes a DataError naming ``path``."""
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _temp_for(path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent, directory=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def is_stale_temp(path: Path, target: str | None = None) -> bool:
    """Whether ``path`` is the temporary file of an atomic write (of the file named ``target``)."""
    return re.match(r"^\." + (re.escape(target) if target else ".+") + _RANDOM, path.name) is not None


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed atomic writes left: every one under the folder
    ``path``, or those of the file ``path``. Call it only where no other process is writing."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in path.rglob(f".*{TEMP_SUFFIX}") if is_stale_temp(p)]
    elif path.parent.is_dir():
        found = [p for p in path.parent.glob(f".*{TEMP_SUFFIX}") if is_stale_temp(p, path.name)]
    else:
        found = []
    for stale in found:
        stale.unlink(missing_ok=True)
    return found


def prepare_output(path: str | os.PathLike, folder: bool = False) -> Path:
    """Before a stage works: remove temporary files a killed run left at the output ``path`` (a file,
    or a ``folder``) and write a small probe file where it will be created (its nearest existing
    folder), so an output that cannot be written fails now with a DataError naming it, not after
    hours of work. Creates nothing."""
    from propy.errors import DataError

    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise DataError(f"{path}: expected a folder here, found a file; remove it or choose another path")
    if not folder and path.is_dir():
        raise DataError(f"{path}: expected a file path, found a folder; give a file name (e.g. {path / 'out.json'})")
    where = next(p for p in (path if folder else path.parent, *path.parents) if p.exists())
    if not where.is_dir():
        raise DataError(f"{where}: is a file, so {path} cannot be created inside it; choose another path")
    try:
        remove_stale_temps(path)
        probe = _temp_for(where / ".propy-probe")
        try:
            probe.write_bytes(b"propy write check\n")
            _fsync(probe)
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise write_error(where, exc) from None
    return path


def partial_folder(out: str | os.PathLike) -> Path:
    """A fresh ``<out>.partial`` folder to fill and then :func:`swap_in` (a killed run's is removed)."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    return partial


def swap_in(partial: Path, out: Path) -> None:
    """Replace the folder ``out`` by ``partial`` with renames only, so ``out`` is never half-written."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    if old.exists():
        shutil.rmtree(old)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path``.

    For libraries that write by file name (``torch.save``, ``numpy.save``).
    """
    with atomic_path(path) as tmp:
        writer(tmp)


def atomic_save_npy(path: str | os.PathLike, array) -> None:
    """``numpy.save``'s bytes, written through Python's file object: numpy's own writer reports a
    short write as "N requested and M written" without its cause (ENOSPC, EFBIG...)."""
    import numpy as np

    fmt = np.lib.format
    array = np.asarray(array)
    array = array if array.flags.c_contiguous else array.copy(order="C")
    if array.dtype.hasobject:
        raise TypeError("atomic_save_npy writes plain arrays, not object arrays")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            fmt.write_array_header_1_0(f, fmt.header_data_from_array_1_0(array))
            f.write(memoryview(array.reshape(-1)).cast("B"))

    atomic_write_with(path, write)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, a failed write is an OSError (ENOSPC...)
            torch.save(obj, f)

    atomic_write_with(path, write)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def read_json(path: str | os.PathLike, missing: str, error: type[Exception] | None = None) -> Any:
    """Parsed JSON of ``path``; ``error`` (default DataError) names the file when it is absent
    (with the ``missing`` hint: what writes it) or not valid JSON (with the line)."""
    from propy.errors import DataError

    error = error or DataError
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


def iter_jsonl(path: str | os.PathLike, missing: str) -> Iterator[tuple[str, Any]]:
    """``(where, object)`` for each non-blank line of a JSON-lines file, ``where`` = ``path:line``
    for the caller's own field errors; DataError names the file when it is absent (with the
    ``missing`` hint) and the line when it is not valid JSON."""
    from propy.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
