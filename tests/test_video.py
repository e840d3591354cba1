import numpy as np
import pytest
import torch

from propy.data.annotations import Record
from propy.data.synth import Event, Video, render, write_mp4
from propy.data.video import decode, normalize, read_video, sample_indices, sampled_coverage, segment_bounds
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
    video = Video(
        "v", 40, (Event("circle", "red", "ends on the left", 6), Event("cross", "cyan", "ends big", 5)), (), 0
    )
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


def reference_uniform_sampling(T: int, Nf: int) -> list[int]:
    """The reference's evaluation offsets as its formula states them: int(tick / 2 + tick * i), tick = T / Nf."""
    tick = T / Nf
    return [int(tick / 2 + tick * i) for i in range(Nf)]


# (T, Nf) -> evaluation indices, worked out by hand from the segment midpoints (i + 0.5) * T / Nf
UNIFORM_SAMPLING_CASES = {
    (16, 4): [2, 6, 10, 14],  # T divisible by Nf: tick 4
    (15, 5): [1, 4, 7, 10, 13],  # tick 3: 1.5, 4.5, ...
    (10, 4): [1, 3, 6, 8],  # tick 2.5: 1.25, 3.75, 6.25, 8.75 (the last two frames are used too)
    (23, 4): [2, 8, 14, 20],  # tick 5.75: 2.875, 8.625, 14.375, 20.125 (floor(T/Nf) = 5 would stop at frame 19)
    (7, 3): [1, 3, 5],  # tick 7/3: 1.17, 3.5, 5.83
    (8, 8): [0, 1, 2, 3, 4, 5, 6, 7],  # T = Nf: every frame once
    (128, 16): [4 + 8 * i for i in range(16)],
    (3, 8): [0, 0, 0, 1, 1, 2, 2, 2],  # T < Nf: 0.19, 0.56, 0.94, 1.31, 1.69, 2.06, 2.44, 2.81
    (1, 4): [0, 0, 0, 0],
    # midpoints (2i + 1) / 7; at i = 10 the midpoint is exactly frame 3's start, and the float step
    # tick / 2 + 10 tick gives 2.9999999999999996: the reference (and propy) take frame 2 there
    (4, 14): [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3],
}


@pytest.mark.parametrize("T, Nf", list(UNIFORM_SAMPLING_CASES))
def test_eval_indices_match_the_reference_uniform_sampling(T, Nf):
    expected = UNIFORM_SAMPLING_CASES[T, Nf]
    assert reference_uniform_sampling(T, Nf) == expected
    got = sample_indices(T, Nf, train=False, rng=None)
    assert got.dtype == np.int64 and got.tolist() == expected


def test_segments_tile_the_whole_video():
    np.testing.assert_allclose(segment_bounds(23, 4), [0.0, 5.75, 11.5, 17.25, 23.0])
    np.testing.assert_allclose(segment_bounds(3, 8), [0.375 * i for i in range(9)])
    with pytest.raises(ValueError):
        segment_bounds(0, 4)


@pytest.mark.parametrize(
    "T, Nf, reachable",
    [
        # segment i spans [i, i + 1) * 5.75 frames: frames floor(start) .. ceil(end) - 1
        (23, 4, [range(0, 6), range(5, 12), range(11, 18), range(17, 23)]),
        # T < Nf: segments of 0.375 frames; one that straddles a frame boundary can draw either frame
        (3, 8, [[0], [0], [0, 1], [1], [1], [1, 2], [2], [2]]),
        (8, 4, [[0, 1], [2, 3], [4, 5], [6, 7]]),
    ],
)
def test_train_draws_cover_each_segment_and_the_whole_video(T, Nf, reachable):
    rng = np.random.default_rng(0)
    draws = np.stack([sample_indices(T, Nf, train=True, rng=rng) for _ in range(2000)])
    assert draws.shape == (2000, Nf) and draws.dtype == np.int64
    for i in range(Nf):
        assert set(draws[:, i].tolist()) == set(reachable[i])
    assert set(draws.ravel().tolist()) == set(range(T))  # the end of the video is drawn too
    evaluation = sample_indices(T, Nf, train=False)
    assert all(int(evaluation[i]) in reachable[i] for i in range(Nf))


def test_train_sampling_is_seeded_and_checks_its_input():
    again = [sample_indices(23, 4, True, np.random.default_rng(7)).tolist() for _ in range(2)]
    assert again[0] == again[1]
    with pytest.raises(ValueError, match="random generator"):
        sample_indices(23, 4, train=True, rng=None)
    with pytest.raises(ValueError):
        sample_indices(0, 4, train=False, rng=None)


class _Cache:
    """The two things sampled_coverage asks a FrameCache: frames and seconds per video."""

    def __init__(self, videos: dict[str, tuple[int, float]]):
        self.videos = videos

    def num_frames(self, vid: str) -> int:
        return self.videos[vid][0]

    def duration(self, vid: str) -> float:
        return self.videos[vid][1]


def test_sampled_coverage_counts_moments_the_frames_cannot_see():
    # "a": 23 frames over 5.75 s; the 4 segments tile [0, 5.75] whole (the old floor(23 / 4) = 5-frame
    # segments stopped at 20 frames = 5.0 s). "b": cached 4.0 s but annotated 5.0 s, so its last second
    # has no frame: (4.2, 4.8) lies outside, (3.5, 4.5) partly.
    cache = _Cache({"a": (23, 5.75), "b": (16, 4.0)})
    recs = [
        Record("a", "1", "q", 5.75, (5.1, 5.75)),
        Record("a", "2", "q", 5.75, (0.0, 1.0)),
        Record("b", "3", "q", 5.0, (4.2, 4.8)),
        Record("b", "4", "q", 5.0, (3.5, 4.5)),
    ]
    assert sampled_coverage(recs, cache, 4) == {
        "moments": 4,
        "outside the sampled frames": 1,
        "partly outside": 1,
        "video not covered, mean (%)": 0.0,
        "video not covered, max (%)": 0.0,
    }
    with pytest.raises(DataError, match="empty"):
        sampled_coverage([], cache, 4)


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
    with pytest.raises(
        DataError, match=r"cut\.mp4: truncated: the frames end at \d+\.\d\d s but the header says 10\.00 s"
    ):
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


def test_the_sampled_frames_of_a_generated_test_split_cover_every_moment(tiny_bench):
    # what the data page reports, on videos the synthetic generator wrote and extract cached
    from propy.data.annotations import load_annotations
    from propy.data.cache import FrameCache

    records = load_annotations(tiny_bench / "synthetic" / "annotations" / "test.jsonl")
    coverage = sampled_coverage(records, FrameCache(tiny_bench / "cache", "test"), 4)
    assert coverage["moments"] == len(records) > 0
    assert coverage["outside the sampled frames"] == 0 and coverage["video not covered, max (%)"] == 0.0
