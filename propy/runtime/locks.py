"""One writer per output folder, and no orphan writer: for stages that write resume state.

``train`` continues from ``<out>/last.pt``; two runs writing the same folder (a second
``dvc repro`` beside a run left behind, or two shells) would overwrite each other's
checkpoints. :func:`exclusive` holds an advisory lock (``flock``) on a file next to the
folder, ``.<folder>.lock``, holding the holder's pid; a second run fails at once naming it.
The kernel releases the lock when the holder dies, even by SIGKILL, so a stale lock file
never blocks a new run. The lock file sits next to the folder, not inside it, so it is
never part of a DVC output.

:func:`stop_with_parent` makes the process receive SIGTERM when its parent dies (Linux
``prctl(PR_SET_PDEATHSIG)``), so killing ``dvc repro`` does not leave a stage running on
as an orphan. It is armed only under DVC (``DVC_STAGE`` is set): a user's
``nohup propy train &`` must outlive its shell.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from propy.errors import DataError

PR_SET_PDEATHSIG = 1


def lock_path(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.lock")


def _open_locked(lock: Path) -> int | None:
    """A descriptor holding the lock on the file now at ``lock``, or None when another process holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold the lock of ``folder`` for the ``with`` block; a DataError naming the holder's pid when
    another process (``command``, for the message) holds it."""
    folder = Path(folder)
    lock = lock_path(folder)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(lock)
    except OSError as exc:
        from propy.runtime.files import write_error

        raise write_error(lock, exc) from None
    if fd is None:
        holder = lock.read_text(encoding="utf-8", errors="replace").strip() if lock.is_file() else ""
        raise DataError(
            f"{folder}: another `propy {command}` is writing this folder (pid {holder or 'unknown'}, lock {lock}); "
            f"wait for it to finish, or stop it (`kill {holder or '<pid>'}`) and re-run to resume"
        )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # before the release, so a waiting run never locks a removed file
        os.close(fd)


def stop_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Under DVC on Linux: ask the kernel to send ``sig`` when the parent process dies (and exit now
    if it died already). Returns whether it was armed."""
    if "DVC_STAGE" not in os.environ or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True
