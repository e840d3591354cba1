"""Video frames for the model: PyAV decoding, frame-index sampling, CLIP normalisation.

Decoding happens once per video (``propy extract`` caches the result), so it
favours clarity over speed. It keeps memory flat: frames are converted only when
picked, so a long video is never held in memory whole. Training and evaluation then sample
``Nf`` frames from the cache with :func:`sample_indices`, one per segment of Nf equal segments
that tile the whole video.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from propy.errors import DataError

SHORT_READ_FRAMES = 3  # frames may end this many frame periods before the header's duration...
SHORT_READ_FRACTION = 0.02  # ...or this fraction of it (rounding, edit lists): more is a truncated file


class DecodedVideo(NamedTuple):
    frames: np.ndarray  # uint8 [T, S, S, 3], RGB
    duration: float  # seconds, from the container's header


def read_video(path: str | os.PathLike, fps: float, max_frames: int, size: int) -> DecodedVideo:
    """Frames at ``fps`` (at most ``max_frames``, uniform over the video), short side resized to
    ``size`` then centre-cropped to ``size`` x ``size``.

    Frame j of the T returned ones is the frame on screen at time (j + 0.5) * duration / T,
    with T = min(max_frames, max(1, round(duration * fps))).

    A file whose frames end well before the header's duration is an error, not a video whose
    last frame lasts: a truncated "faststart" mp4 (index first, frames cut off) decodes without
    complaint, and its tail would otherwise be filled with repeats of the last frame that arrived.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = _header_duration(container, stream)
            if duration is None:
                raise DataError(f"{path}: the container header gives no duration")
            count = min(max_frames, max(1, round(duration * fps)))
            targets = (np.arange(count) + 0.5) * duration / count
            frames, end = _pick(container.decode(stream), targets, size)
            rate = stream.average_rate or stream.guessed_rate
    except av.FFmpegError as exc:
        raise DataError(f"{path}: cannot decode video ({exc})") from None
    if not frames:
        raise DataError(f"{path}: no frame could be decoded")
    period = float(1 / rate) if rate else 0.0
    if end is not None and end + period < duration - max(SHORT_READ_FRAMES * period, SHORT_READ_FRACTION * duration):
        raise DataError(
            f"{path}: truncated: the frames end at {end + period:.2f} s but the header says {duration:.2f} s "
            "(an interrupted download or copy?); fetch the file again"
        )
    return DecodedVideo(np.stack(frames), duration)


def decode(path: str | os.PathLike, fps: float, max_frames: int, size: int) -> np.ndarray:
    """uint8 ``[T, size, size, 3]``: see :func:`read_video`."""
    return read_video(path, fps, max_frames, size).frames


def probe_duration(path: str | os.PathLike) -> float | None:
    """A video's length in seconds from its header, or None when the file is missing, unreadable
    or has no video stream (converters count such videos as skipped instead of failing)."""
    import av

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            return _header_duration(container, streams[0]) if streams else None
    except av.FFmpegError:
        return None


def _header_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return None


def _pick(decoded, targets: np.ndarray, size: int) -> tuple[list[np.ndarray], float | None]:
    """For each target time, the frame on screen then (the last one starting at or before it), resized;
    and, when the frames ran out before the last target, the start time of the last one (else None).

    Times count from the first frame. Decoding stops once every target is served, and a frame
    picked for several targets is converted once.
    """
    picked: list[np.ndarray] = []
    shown, image, start = None, None, None

    def current() -> np.ndarray:
        nonlocal image
        if image is None:
            image = _rgb(shown, size)
        return image

    for frame in decoded:
        start = frame.time if start is None else start
        while shown is not None and len(picked) < len(targets) and targets[len(picked)] < frame.time - start - 1e-6:
            picked.append(current())
        if len(picked) == len(targets):
            break
        shown, image = frame, None
    ran_out = shown is not None and len(picked) < len(targets)
    end = shown.time - start if ran_out else None
    while shown is not None and len(picked) < len(targets):
        picked.append(current())
    return picked, end


def _rgb(frame, size: int) -> np.ndarray:
    """The frame as it is shown (turned upright by its display matrix), short side resized to
    ``size`` (area averaging), then the centre ``size`` x ``size`` crop.

    A phone stores a portrait video as landscape frames and a display matrix that turns them;
    players obey it, so the model must see what a viewer sees. ``frame.rotation`` is the matrix's
    counter-clockwise angle (-90 for a phone's "rotate 90"), taken to the nearest quarter turn."""
    turns = round(frame.rotation / 90) % 4
    w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)  # as shown
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    stored = (rh, rw) if turns % 2 else (rw, rh)
    image = np.rot90(frame.to_ndarray(format="rgb24", width=stored[0], height=stored[1], interpolation="AREA"), turns)
    top, left = (rh - size) // 2, (rw - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def segment_bounds(T: int, Nf: int) -> np.ndarray:
    """float64 ``[Nf + 1]``: the boundaries, in frame units, of the ``Nf`` equal segments that
    tile a video of ``T`` cached frames (segment i is [i, i + 1) * T / Nf). Frame i of the model
    stands for segment i, i.e. the time span [i, i + 1) * duration / Nf, which is what event
    proposals (``Pyramid.proposals``) scale by the duration."""
    if T < 1 or Nf < 1:
        raise ValueError(f"need T >= 1 and Nf >= 1, got T={T}, Nf={Nf}")
    return (T / Nf) * np.arange(Nf + 1, dtype=np.float64)


def sample_indices(T: int, Nf: int, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """``Nf`` frame indices into ``T`` frames, one per segment of :func:`segment_bounds`.

    At evaluation the index is the frame holding the segment's midpoint, int(tick / 2 + tick * i)
    with tick = T / Nf a float: the reference's ``uniform_sampling``, its float rounding included
    (a midpoint that falls exactly on a frame boundary may round to the earlier frame). At
    training it is the frame holding a uniformly random time of the segment (``rng``): every frame
    of the video can be drawn, the evaluation frame among them. When T < Nf, segments are shorter
    than a frame and frames repeat in order.
    """
    bounds = segment_bounds(T, Nf)
    if not train:
        tick = T / Nf
        return (tick / 2 + tick * np.arange(Nf, dtype=np.float64)).astype(np.int64)
    if rng is None:
        raise ValueError("training sampling needs a random generator")
    times = bounds[:-1] + (bounds[1:] - bounds[:-1]) * rng.random(Nf)
    return np.minimum(times.astype(np.int64), T - 1)  # a draw that rounds up to the video's end stays inside


def sampled_coverage(records: Sequence, cache, num_frames: int) -> dict:
    """How much of a split's videos and moments the ``num_frames`` sampled frames stand for.

    The frames stand for the span their segments tile (:func:`segment_bounds`, in seconds of the
    cached video); a moment lying wholly outside that span is one no model can see (the sampler
    before issue 20 dropped the last T - Nf floor(T / Nf) frames, hiding such moments), a moment
    partly outside loses its end. ``records`` are the split's annotations, ``cache`` its
    ``FrameCache`` (frames and seconds per video).
    """
    if not records:
        raise DataError("no annotation records: the split is empty")
    outside = partly = 0
    hidden = {}
    for r in records:
        frames, duration = cache.num_frames(r.vid_name), cache.duration(r.vid_name)
        bounds = segment_bounds(frames, num_frames) * duration / frames
        start, end = float(bounds[0]), float(bounds[-1])
        outside += r.ts[0] >= end or r.ts[1] <= start
        partly += r.ts[0] < end < r.ts[1] or r.ts[0] < start < r.ts[1]
        hidden[r.vid_name] = 100.0 * (1.0 - (end - start) / duration)
    return {
        "moments": len(records),
        "outside the sampled frames": int(outside),
        "partly outside": int(partly),
        "video not covered, mean (%)": float(np.mean(list(hidden.values()))),
        "video not covered, max (%)": float(max(hidden.values())),
    }


def normalize(frames: np.ndarray, mean: Sequence[float], std: Sequence[float]):
    """uint8 ``[..., S, S, 3]`` -> float tensor ``[..., 3, S, S]``: (x / 255 - mean) / std per channel."""
    import torch

    x = np.asarray(frames, dtype=np.float32)  # a writable copy: cached frames are read-only memory maps
    x = torch.from_numpy(x).div_(255.0).movedim(-1, -3)
    shape = (3, 1, 1)
    return (x - torch.tensor(mean, dtype=x.dtype).view(shape)) / torch.tensor(std, dtype=x.dtype).view(shape)
