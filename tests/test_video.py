import numpy as np
import pytest
import torch

from propy.data.synth import Event, Video, render, write_mp4
from propy.data.video import decode, normalize, read_video, sample_indices
from propy.errors import DataError


@pytest.fixture(scope="module")
def counting(tmp_path_factory):
    """2 s at 8 fps, 48 x 64 (h x w): frame i is grey level 16 i, with a red band in columns 0-7
    (cropped away at S=24) and a blue band in columns 8-15 (the crop's left 4 columns)."""
    frames = np.zeros((16, 48, 64, 3), dtype=np.uint8)
    for i in range(16):
        frames[i] = 16 * i
    frames[:, :, 0:8] = (255, 0, 0)
    frames[:, :, 8:16] = (0, 0, 255)
    path = tmp_path_factory.mktemp("video") / "counting.mp4"
    write_mp4(path, frames, 8, "libx264")
    return path


def grey_index(frames):
    """Frame numbers from the grey level at the centre of each frame."""
    c = frames.shape[1] // 2
    return np.rint(frames[:, c, c].astype(float).mean(axis=1) / 16).astype(int).tolist()


def test_decode_resizes_short_side_and_centre_crops(counting):
    frames = decode(counting, fps=8, max_frames=100, size=24)
    assert frames.dtype == np.uint8 and frames.shape == (16, 24, 24, 3)
    assert grey_index(frames) == list(range(16))
    left = frames[:, 12, :3].astype(int)  # 64 -> 32 wide: red 0-3 cropped, blue 4-7 -> crop 0-3
    assert np.all(left[..., 2] > 200) and np.all(left[..., 0] < 60)


def test_frames_are_uniform_in_time_and_capped(counting):
    video = read_video(counting, fps=4, max_frames=100, size=24)
    assert video.duration == pytest.approx(2.0)
    # T = 8 targets at (j + 0.5) / 4 s: the frame on screen then is 2 j + 1
    assert grey_index(video.frames) == [1, 3, 5, 7, 9, 11, 13, 15]
    capped = decode(counting, fps=8, max_frames=4, size=24)  # targets 0.25, 0.75, 1.25, 1.75 s
    assert grey_index(capped) == [2, 6, 10, 14]
    slow = decode(counting, fps=0.2, max_frames=100, size=24)  # one frame: the middle one
    assert grey_index(slow) == [8]
    fast = decode(counting, fps=16, max_frames=100, size=24)  # each frame twice
    assert grey_index(fast) == [i // 2 for i in range(32)]


def test_synthetic_video_round_trip(tmp_path):
    video = Video("v", 40, (Event("circle", "red", "ends on the left", 6), Event("cross", "cyan", "ends big", 5)), (), 0)
    frames = render(video, 32)
    write_mp4(tmp_path / "v.mp4", frames, 8, "libx264")
    decoded = read_video(tmp_path / "v.mp4", fps=8, max_frames=64, size=32)
    assert decoded.duration == pytest.approx(11 / 8)
    assert decoded.frames.shape == frames.shape
    assert np.abs(decoded.frames.astype(int) - frames).mean() < 4  # lossy, but close


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nothing.mp4: video file not found"):
        decode(tmp_path / "nothing.mp4", 4, 10, 16)
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="garbage.mp4: cannot decode"):
        decode(bad, 4, 10, 16)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(DataError, match="notes.mp4"):
        decode(text, 4, 10, 16)


def test_eval_indices_are_segment_centres():
    # T=10, Nf=4: segments of 2 frames [0,1] [2,3] [4,5] [6,7]; frames 8, 9 unused
    assert sample_indices(10, 4, train=False, rng=None).tolist() == [1, 3, 5, 7]
    assert sample_indices(16, 4, train=False, rng=None).tolist() == [2, 6, 10, 14]
    assert sample_indices(15, 5, train=False, rng=None).tolist() == [1, 4, 7, 10, 13]
    assert sample_indices(8, 8, train=False, rng=None).tolist() == list(range(8))
    assert sample_indices(10, 4, train=False, rng=None).dtype == np.int64


def test_short_videos_repeat_frames_in_order():
    # T=3, Nf=8: floor((i + 0.5) * 3 / 8) = 0 0 0 1 1 2 2 2
    assert sample_indices(3, 8, train=False, rng=None).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sample_indices(1, 4, train=False, rng=None).tolist() == [0, 0, 0, 0]
    rng = np.random.default_rng(0)
    assert sample_indices(3, 8, train=True, rng=rng).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]


def test_train_jitter_stays_inside_segments_and_covers_them():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_indices(23, 4, train=True, rng=rng) for _ in range(400)])  # L = 5
    assert draws.shape == (400, 4) and draws.dtype == np.int64
    for i in range(4):
        assert set(draws[:, i].tolist()) == set(range(5 * i, 5 * i + 5))
    again = [sample_indices(23, 4, True, np.random.default_rng(7)).tolist() for _ in range(2)]
    assert again[0] == again[1]
    with pytest.raises(ValueError, match="random generator"):
        sample_indices(23, 4, train=True, rng=None)
    with pytest.raises(ValueError):
        sample_indices(0, 4, train=False, rng=None)


def test_normalize_layout_and_values():
    frames = np.zeros((2, 5, 4, 4, 3), dtype=np.uint8)
    frames[..., 0] = 255  # pure red
    frames[1, 2, 1, 3] = (0, 51, 255)
    mean, std = (0.5, 0.25, 0.75), (0.25, 0.5, 0.25)
    x = normalize(frames, mean, std)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (2, 5, 3, 4, 4)
    assert x[0, 0, :, 0, 0].tolist() == pytest.approx([2.0, -0.5, -3.0])
    assert x[1, 2, :, 1, 3].tolist() == pytest.approx([-2.0, -0.1, 1.0])


def test_a_truncated_faststart_mp4_is_a_bad_video_not_repeats(tmp_path):
    """Index (moov) first, then the frames: cut in half, it decodes quietly up to the cut."""
    import av

    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height = stream.width = 32
        stream.pix_fmt = "yuv420p"
        for i in range(100):
            image = np.full((32, 32, 3), 2 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    assert read_video(path, 10, 200, 32).frames.shape[0] == 100  # the whole file is fine
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.mp4: truncated: the frames end at \d+\.\d\d s but the header says 10\.00 s"):
        read_video(cut, 10, 200, 32)


def test_a_video_whose_last_frame_is_long_is_not_truncated(counting):
    """The tail rule only fires when frames stop far before the header's end."""
    assert grey_index(decode(counting, fps=16, max_frames=100, size=24))[-2:] == [15, 15]


def _write_turned(path, rotation, frames=4):
    """A 64 x 32 landscape H.264 file whose display matrix turns it by ``rotation`` degrees
    counter-clockwise, as a phone writes a portrait video (None: no matrix at all)."""
    import av

    yy, xx = np.mgrid[0:32, 0:64]
    image = np.stack([xx * 4, yy * 8, np.full_like(xx, 128)], axis=-1).astype(np.uint8)  # no symmetry to hide a turn
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("rotation, turns", [(-90, -1), (90, 1), (180, 2)])
def test_a_display_matrix_turns_the_frames_upright(tmp_path, rotation, turns):
    """Issue 23 case 2: a phone's portrait video (display matrix "rotate 90", which PyAV reads as -90)
    was cached sideways, byte for byte the frames of the same file without the matrix."""
    import av

    _write_turned(tmp_path / "plain.mp4", None)
    _write_turned(tmp_path / "turned.mp4", rotation)
    with av.open(str(tmp_path / "turned.mp4")) as container:
        assert next(container.decode(video=0)).rotation == (rotation if rotation != 180 else -180)
    plain = read_video(tmp_path / "plain.mp4", 8.0, 4, 16).frames
    turned = read_video(tmp_path / "turned.mp4", 8.0, 4, 16).frames
    assert turned.shape == plain.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(turned, np.rot90(plain, turns, axes=(1, 2)))
    if rotation == -90:  # turned clockwise: the stored frame's left edge (red 0) is now its top
        assert turned[0, 0, :, 0].mean() < turned[0, -1, :, 0].mean()
