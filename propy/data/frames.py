"""One video's cached frames on disk: raw uint8 (``.npy``) or JPEG-compressed (``.npz``).

Raw frames cost T x S x S x 3 bytes: 19.3 MB per video at 128 frames of 224 px, about 378 GB
for TVR train+val. JPEG (how TVR's own frames are distributed) at quality 90 is about a tenth of
that on natural video, and a sample of Nf frames decodes only those Nf images, in the DataLoader's
workers. Raw stays for the synthetic benchmark, whose few flat-coloured videos are small either
way and whose results should not move with a codec.

JPEG file: an uncompressed ``.npz`` with ``offsets`` (int64 [T + 1]) and ``jpeg`` (uint8, the T
images back to back; image t is ``jpeg[offsets[t]:offsets[t + 1]]``).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from propy.errors import DataError
from propy.runtime.files import atomic_save_npy, atomic_write_with

RAW, JPEG = ".npy", ".npz"


def suffix(quality: int | None) -> str:
    """The file suffix of a cache written at ``quality`` (None: raw)."""
    return RAW if quality is None else JPEG


def write_frames(path: str | os.PathLike, frames: np.ndarray, quality: int | None) -> None:
    """Save uint8 ``[T, S, S, 3]`` frames at ``path`` (atomically): raw, or JPEG at ``quality``."""
    if quality is None:
        atomic_save_npy(path, frames)
        return
    from PIL import Image

    images = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        images.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(image) for image in images]).astype(np.int64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, offsets=offsets, jpeg=np.concatenate(images))

    atomic_write_with(path, write)


def read_frames(path: str | os.PathLike, index: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``[len(index), S, S, 3]`` (every frame when ``index`` is None). Raw files are
    memory-mapped, so only the picked frames are read; JPEG files decode only those."""
    path = Path(path)
    try:
        if path.suffix == RAW:
            frames = np.load(path, mmap_mode="r")
            return frames if index is None else np.asarray(frames[index])
        with np.load(path) as archive:
            offsets, data = archive["offsets"], archive["jpeg"]
    except FileNotFoundError:
        raise DataError(f"{path}: cached frames missing (re-run `python -m propy extract`)") from None
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable frame file ({exc})") from None
    picked = range(len(offsets) - 1) if index is None else index
    return np.stack([_decode(data[offsets[t] : offsets[t + 1]], path, t) for t in picked])


def _decode(jpeg: np.ndarray, path: Path, t: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg.tobytes())) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: frame {t} is not a readable JPEG ({exc})") from None


def frames_problem(path: str | os.PathLike, shape: tuple[int, ...]) -> str | None:
    """What is wrong with the cached frames at ``path`` for uint8 ``shape`` ``[T, S, S, 3]``, or None
    when they are whole. Reads headers only, so a resumed extract checks every video cheaply: a raw
    file must hold exactly that dtype and shape and be exactly as long as they say (a file cut short
    or with a tail is damaged); a JPEG file must be a readable archive whose T + 1 offsets end at its
    byte count (a torn write loses the zip's directory)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if path.suffix == RAW:
        return _raw_problem(path, shape)
    return _jpeg_problem(path, shape[0])


def _header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    return (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)


def _raw_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    try:
        with open(path, "rb") as f:
            got_shape, fortran, dtype = _header(f)
            offset = f.tell()
    except (OSError, ValueError, SyntaxError) as exc:
        return f"not a readable .npy file ({exc})"
    if dtype != np.uint8 or tuple(got_shape) != shape or fortran:
        return f"holds {dtype} {list(got_shape)}, expected uint8 {list(shape)}"
    size = path.stat().st_size
    if size != offset + int(np.prod(shape)):
        return f"{size} bytes, expected {offset + int(np.prod(shape))} for uint8 {list(shape)}"
    return None


def _jpeg_problem(path: Path, count: int) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open("offsets.npy") as f:
                offsets = np.lib.format.read_array(f)
            with archive.open("jpeg.npy") as f:
                data_shape, _, dtype = _header(f)
    except (OSError, ValueError, SyntaxError, KeyError, zipfile.BadZipFile) as exc:
        return f"not a readable JPEG frame archive ({exc})"
    if (
        dtype != np.uint8
        or len(data_shape) != 1
        or len(offsets) != count + 1
        or offsets[0] != 0
        or np.any(np.diff(offsets) <= 0)
        or offsets[-1] != data_shape[0]
    ):
        return f"its offsets do not describe {count} JPEG images in {data_shape} {dtype} bytes"
    return None
