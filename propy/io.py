"""Atomic file writes (a reader never sees a half-written output) and checked JSON reads.

Each writer puts the content in a temporary file in the target's directory
and renames it over the target (``os.replace`` is atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write_with(path, write)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    atomic_write_with(path, lambda tmp: torch.save(obj, tmp))


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
