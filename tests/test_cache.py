import hashlib
import json
import re
import shutil
import warnings

import numpy as np
import pytest
from conftest import run_train, write_tiny_params

from propy.cli import main
from propy.config import load_params
from propy.data.cache import MANIFEST, FrameCache
from propy.data.extraction import JOURNAL, BadVideos, extract_split
from propy.data.synth import Event, Video, render, write_mp4
from propy.data.video import decode, normalize
from propy.errors import DataError
from propy.model.configs import model_input_size

SETTINGS = dict(size=16, fps=4.0, max_frames=6)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three short mp4s: 1.0 s, 1.5 s and 3.0 s at 8 fps."""
    root = tmp_path_factory.mktemp("videos")
    for name, frames in (("a", 8), ("b", 12), ("c", 24)):
        video = Video(name, 30, (Event("square", "yellow", "ends at the top", frames),), (), 0)
        write_mp4(root / f"{name}.mp4", render(video, 32), 8, "libx264")
    return root


def extract(videos, out, names=("a", "b", "c"), **kw):
    return extract_split(list(names), videos, ".mp4", out, progress=False, **{**SETTINGS, **kw})


def test_extract_writes_frames_and_manifest(videos, tmp_path):
    result = extract(videos, tmp_path / "train")
    assert result.decoded == ["a", "b", "c"] and result.reused == [] and not result.skipped
    cache = FrameCache(tmp_path, "train")
    assert (cache.size, cache.fps, cache.names, len(cache)) == (16, 4.0, ["a", "b", "c"], 3)
    # T = min(max_frames, round(duration * fps)): 4, 6, min(6, 12)
    assert [cache.num_frames(v) for v in "abc"] == [4, 6, 6]
    assert [cache.duration(v) for v in "abc"] == pytest.approx([1.0, 1.5, 3.0])
    frames = cache.frames("c")
    assert frames.dtype == np.uint8 and frames.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(frames, decode(videos / "c.mp4", 4.0, 6, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the read-only memory map must not reach torch
        x = normalize(frames, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert x.shape == (6, 3, 16, 16) and float(x[2, 1, 4, 5]) == pytest.approx(frames[2, 4, 5, 1] / 255)
    manifest = json.loads((tmp_path / "train" / MANIFEST).read_text())
    digest = hashlib.sha256((tmp_path / "train" / "a.npy").read_bytes()).hexdigest()
    assert manifest["videos"]["a"] == {"file": "a.npy", "num_frames": 4, "duration": 1.0, "sha256": digest}
    assert manifest["skipped"] == [] and manifest["size"] == 16


def test_second_run_decodes_nothing(videos, tmp_path):
    out = tmp_path / "val"
    extract(videos, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    again = extract(videos, out)
    assert again.decoded == [] and again.reused == ["a", "b", "c"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == mtimes
    assert again.manifest == json.loads((out / MANIFEST).read_text())


def test_interrupted_run_resumes_with_the_missing_video_only(videos, tmp_path):
    out = tmp_path / "train"
    extract(videos, out)
    # the state a crash while writing "c" leaves: no manifest, c's journal line torn, no c.npy
    (out / MANIFEST).unlink()
    (out / "c.npy").unlink()
    lines = (out / JOURNAL).read_text().splitlines()
    (out / JOURNAL).write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    resumed = extract(videos, out)
    assert resumed.decoded == ["c"] and resumed.reused == ["a", "b"]
    assert FrameCache(tmp_path, "train").frames("c").shape == (6, 16, 16, 3)


def test_changed_settings_or_source_are_decoded_again(videos, tmp_path):
    out = tmp_path / "test"
    extract(videos, out)
    assert extract(videos, out, size=8).decoded == ["a", "b", "c"]
    assert FrameCache(tmp_path, "test").frames("a").shape == (4, 8, 8, 3)
    copy = tmp_path / "videos"
    shutil.copytree(videos, copy)
    extract(copy, out)
    write_mp4(copy / "b.mp4", np.zeros((8, 32, 32, 3), np.uint8), 8, "libx264")  # new content, new mtime
    assert extract(copy, out).decoded == ["b"]


def test_bad_videos_are_all_listed_and_good_ones_kept(videos, tmp_path):
    src = tmp_path / "videos"
    shutil.copytree(videos, src)
    (src / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)
    out = tmp_path / "train"
    with pytest.raises(BadVideos) as err:
        extract(src, out, names=("a", "b", "c", "zz"))
    message = str(err.value)
    assert "2 video(s)" in message and "b.mp4: cannot decode" in message and "zz.mp4: video file not found" in message
    assert set(err.value.bad) == {"b", "zz"}
    assert not (out / MANIFEST).exists()
    with pytest.raises(DataError, match="no frame cache manifest"):
        FrameCache(tmp_path, "train")
    assert extract(src, out, names=("a", "c")).decoded == []  # the good ones were cached before failing


def test_skip_bad_lists_skipped_videos_in_the_manifest(videos, tmp_path):
    out = tmp_path / "train"
    result = extract(videos, out, names=("a", "gone", "c"), skip_bad=True)
    assert list(result.skipped) == ["gone"]
    cache = FrameCache(tmp_path, "train")
    assert cache.names == ["a", "c"] and cache.skipped == ["gone"]
    assert json.loads((out / MANIFEST).read_text())["skipped"] == ["gone"]


def test_frame_cache_errors_name_the_file(videos, tmp_path):
    extract(videos, tmp_path / "train")
    cache = FrameCache(tmp_path, "train")
    with pytest.raises(DataError, match=r"manifest.json: video 'nope' is not in the frame cache"):
        cache.frames("nope")
    (tmp_path / "train" / "a.npy").unlink()
    with pytest.raises(DataError, match=r"a.npy: cached frames missing"):
        cache.frames("a")
    np.save(tmp_path / "train" / "b.npy", np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"b.npy: expected uint8 \[6, 16, 16, 3\]"):
        cache.frames("b")
    (tmp_path / "train" / MANIFEST).write_text("{}")
    with pytest.raises(DataError, match="not a valid frame cache manifest"):
        FrameCache(tmp_path, "train")


def write_params(tmp_path, clip_model="configs/propy-tiny.json", skip_bad=False):
    return write_tiny_params(
        tmp_path / "params.yaml",
        {
            "synth": {"seed": 0, "videos": {"train": 2, "val": 2, "test": 2}, "size": 32, "event_seconds": [0.5, 0.5]},
            "extract": {"fps": 4.0, "skip_bad": skip_bad},
            "clip": {"model": clip_model},
        },
    )


def extract_cli(params, tmp_path, *flags):
    return main(
        [
            "extract",
            "--params",
            str(params),
            "--data",
            str(tmp_path / "bench"),
            "--out",
            str(tmp_path / "cache"),
            "--size",
            "16",
            *flags,
        ]
    )


def test_cli_extracts_every_split_and_reports_bad_videos(tmp_path, capsys):
    params = write_params(tmp_path)
    assert main(["synth", "--params", str(params), "--out", str(tmp_path / "bench")]) == 0
    assert extract_cli(params, tmp_path) == 0
    out = capsys.readouterr().out
    assert "extract train: 2 videos" in out and "extract test: 2 videos" in out
    assert FrameCache(tmp_path / "cache", "val").size == 16
    (tmp_path / "bench" / "videos" / "train1.mp4").unlink()
    (tmp_path / "bench" / "videos" / "test0.mp4").write_text("broken")
    assert extract_cli(params, tmp_path, "--split", "all") == 2
    err = capsys.readouterr().err
    assert (
        "error: 2 video(s) missing, unreadable or shorter than annotated" in err and "train1" in err and "test0" in err
    )
    assert extract_cli(write_params(tmp_path, skip_bad=True), tmp_path) == 0
    assert FrameCache(tmp_path / "cache", "test").skipped == ["test0"]


def test_default_size_is_the_clip_input_size(tmp_path):
    config = tmp_path / "tiny-clip.json"
    config.write_text(
        json.dumps(
            {
                "embed_dim": 32,
                "vision_cfg": {"image_size": 24, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
            }
        )
    )
    assert model_input_size(load_params(write_params(tmp_path, clip_model=str(config)))) == 24


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), r"\d+ bytes, expected \d+ for uint8 \[6, 16, 16, 3\]"),
        (lambda p: p.write_bytes(p.read_bytes() + b"tail"), r"\d+ bytes, expected \d+"),
        (lambda p: p.write_bytes(b"garbage"), r"not a readable \.npy file"),
        (
            lambda p: np.save(p, np.zeros((6, 8, 8, 3), np.uint8)),
            r"holds uint8 \[6, 8, 8, 3\], expected uint8 \[6, 16, 16, 3\]",
        ),
        (lambda p: np.save(p, np.zeros((6, 16, 16, 3), np.float32)), r"holds float32"),
        (lambda p: p.unlink(), r"missing"),
        (lambda p: _flip_inside_a_frame(p), r"its bytes differ from the SHA-256 recorded when it was written"),
    ],
)
def test_damaged_cached_frames_are_decoded_again(videos, tmp_path, damage, problem):
    out = tmp_path / "train"
    extract(videos, out)
    good = (out / "b.npy").read_bytes()
    damage(out / "b.npy")
    again = extract(videos, out)
    assert again.decoded == ["b"] and again.reused == ["a", "c"]
    assert list(again.repaired) == ["b"] and re.match(problem, again.repaired["b"])
    assert (out / "b.npy").read_bytes() == good


def _flip_inside_a_frame(path):
    """Bytes of frame 3 inverted: header and size stay right, only the content changes."""
    data = bytearray(path.read_bytes())
    data[-3 * 16 * 16 * 3 : -3 * 16 * 16 * 3 + 50] = bytes(
        255 - b for b in data[-3 * 16 * 16 * 3 : -3 * 16 * 16 * 3 + 50]
    )
    path.write_bytes(bytes(data))


def test_frames_damaged_after_extract_are_refused_on_read(videos, tmp_path):
    """Issue 23 case 1: bytes flipped inside a cached frame went unnoticed by evaluate (a rank moved)
    and by extract ("already cached"), which wrote the damaged file's hash to dvc.lock."""
    out = tmp_path / "test"
    extract(videos, out)
    good = (out / "b.npy").read_bytes()
    cache = FrameCache(tmp_path, "test")
    np.testing.assert_array_equal(cache.frames_at("a", np.array([0, 2])), np.load(out / "a.npy")[[0, 2]])
    _flip_inside_a_frame(out / "b.npy")
    with pytest.raises(
        DataError,
        match=r"b\.npy: its bytes differ from the SHA-256 in .*manifest\.json \(damaged after "
        r"extraction\); re-run `python -m propy extract`",
    ):
        FrameCache(tmp_path, "test").frames_at("b", np.array([0]))
    with pytest.raises(DataError, match=r"b\.npy: its bytes differ"):
        FrameCache(tmp_path, "test").verify()
    again = extract(videos, out)
    assert again.decoded == ["b"] and (out / "b.npy").read_bytes() == good
    FrameCache(tmp_path, "test").verify()


def test_a_cache_without_digests_is_upgraded_without_decoding(videos, tmp_path):
    """A cache written before the digests: each reused file gets its digest, nothing is decoded."""
    out = tmp_path / "train"
    extract(videos, out)
    manifest = json.loads((out / MANIFEST).read_text())
    lines = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()]
    (out / JOURNAL).write_text("".join(json.dumps({k: v for k, v in e.items() if k != "sha256"}) + "\n" for e in lines))
    again = extract(videos, out)
    assert again.decoded == [] and again.reused == ["a", "b", "c"]
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert all("sha256" in json.loads(line) for line in (out / JOURNAL).read_text().splitlines())


def test_cli_says_which_cached_files_it_repaired(tmp_path, capsys):
    params = write_params(tmp_path)
    assert main(["synth", "--params", str(params), "--out", str(tmp_path / "bench")]) == 0
    assert extract_cli(params, tmp_path, "--split", "train") == 0
    (tmp_path / "cache" / "train" / "train0.npy").write_bytes(b"\x93NUMPY torn")
    capsys.readouterr()
    assert extract_cli(params, tmp_path, "--split", "train") == 0
    out = capsys.readouterr().out
    assert "(1 decoded, 1 already cached" in out and "decoded again (their cached frames were damaged)" in out
    assert "train0: not a readable .npy file" in out


def test_a_cache_of_another_frame_size_is_named_before_training(tiny_bench, tmp_path, capsys):
    """A cache extracted at 16 px for a 32 px CLIP: a clear error, not a tensor-size traceback."""
    from conftest import layout_args

    cache = tmp_path / "cache"
    for split in ("train", "val"):
        shutil.copytree(tiny_bench / "cache" / split, cache / split)
        manifest = json.loads((cache / split / MANIFEST).read_text())
        for entry in manifest["videos"].values():
            np.save(cache / split / entry["file"], np.zeros((entry["num_frames"], 16, 16, 3), np.uint8))
        (cache / split / MANIFEST).write_text(json.dumps({**manifest, "size": 16}))
    params = write_tiny_params(tmp_path / "params.yaml")
    args = [a if a != str(tiny_bench / "cache") else str(cache) for a in layout_args(tiny_bench)]
    assert run_train(params, args, tmp_path / "m", tmp_path / "log.json", "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert f"{cache / 'train' / MANIFEST}: frames are cached at 16 px but" in err and "takes 32 px" in err
    assert (
        main(
            [
                "evaluate",
                "--params",
                str(params),
                "--variant",
                "zs_meanpool",
                "--split",
                "val",
                *args,
                "--metrics",
                str(tmp_path / "m.json"),
                "--results",
                str(tmp_path / "r"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert f"{cache / 'val' / MANIFEST}: frames are cached at 16 px" in capsys.readouterr().err


def test_jpeg_cache_is_smaller_and_decodes_only_the_sampled_frames(videos, tmp_path, monkeypatch):
    extract(videos, tmp_path / "raw" / "train", size=64)  # at 16 px a JPEG header outweighs the pixels
    jpeg = extract(videos, tmp_path / "jpeg" / "train", size=64, jpeg_quality=90)
    assert jpeg.manifest["jpeg_quality"] == 90 and jpeg.manifest["videos"]["c"]["file"] == "c.npz"
    assert (tmp_path / "jpeg" / "train" / "c.npz").stat().st_size < (
        tmp_path / "raw" / "train" / "c.npy"
    ).stat().st_size
    exact, lossy = FrameCache(tmp_path / "raw", "train"), FrameCache(tmp_path / "jpeg", "train")
    index = np.array([5, 0, 5])
    picked = lossy.frames_at("c", index)
    assert picked.shape == (3, 64, 64, 3) and picked.dtype == np.uint8
    assert np.abs(picked.astype(int) - exact.frames_at("c", index).astype(int)).mean() < 6  # JPEG, q 90
    np.testing.assert_array_equal(lossy.frames("c")[index], picked)
    import propy.data.frames as frames_module

    calls = []
    decode_one = frames_module._decode
    monkeypatch.setattr(frames_module, "_decode", lambda *a: calls.append(a[2]) or decode_one(*a))
    lossy.frames_at("c", np.array([1, 4]))
    assert calls == [1, 4]  # a sample decodes its frames only
    # a torn or foreign JPEG archive is found on resume (headers only) and decoded again
    whole = (tmp_path / "jpeg" / "train" / "b.npz").read_bytes()
    (tmp_path / "jpeg" / "train" / "b.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "jpeg" / "train" / "c.npz").write_bytes(b"not a zip")
    repaired = extract(videos, tmp_path / "jpeg" / "train", size=64, jpeg_quality=90)
    assert sorted(repaired.repaired) == ["b", "c"] and repaired.reused == ["a"]
    assert all("not a readable JPEG frame archive" in problem for problem in repaired.repaired.values())
    # another quality (or raw) re-decodes, and the other format's file goes
    again = extract(videos, tmp_path / "jpeg" / "train", size=64)
    assert again.decoded == ["a", "b", "c"] and sorted(p.name for p in (tmp_path / "jpeg" / "train").glob("*.np?")) == [
        "a.npy",
        "b.npy",
        "c.npy",
    ]


def test_a_video_shorter_than_annotated_is_reported_with_both_durations(videos, tmp_path):
    """c.mp4 lasts 3.0 s: annotations saying 4.5 s are beyond the 1 s tolerance, 3.8 s are not."""
    out = tmp_path / "train"
    with pytest.raises(
        BadVideos,
        match=r"c\.mp4: the video lasts 3\.00 s but its annotations give duration "
        r"4\.50 s \(shorter by more than extract\.duration_tolerance = 1 s",
    ):
        extract(videos, out, durations={"a": 1.0, "c": 4.5})
    assert extract(videos, out, durations={"c": 3.8}).reused == ["a", "b", "c"]  # cached before the error
    listed = extract(videos, out, durations={"c": 4.5}, skip_bad=True)
    assert listed.manifest["skipped"] == ["c"] and "c" not in listed.manifest["videos"]
    assert "annotations give duration 4.50 s" in listed.skipped["c"]
    assert not extract(videos, out, durations={"c": 4.5}, duration_tolerance=2.0).skipped


def test_extraction_reports_progress_in_logs(videos, tmp_path, capsys):
    """Off a terminal (a log file under `dvc repro`) a plain line says how far extraction got."""
    extract_split(["a", "b"], videos, ".mp4", tmp_path / "train", desc="extract train", **SETTINGS)
    err = capsys.readouterr().err
    assert "extract train: 2/2 videos (100%)" in err


def test_a_video_in_two_splits_is_decoded_once_and_linked(videos, tmp_path):
    """ActivityNet Captions' val_1 and val_2 annotate the same videos: the second split links the first's
    cached file (same inode: no second copy) when the source and settings match, and decodes otherwise."""
    extract(videos, tmp_path / "val", names=("a", "b"))
    second = extract(videos, tmp_path / "test", names=("b", "c"), shared=(tmp_path / "val",))
    assert second.decoded == ["c"] and second.linked == ["b"] and second.reused == []
    assert (tmp_path / "test" / "b.npy").stat().st_ino == (tmp_path / "val" / "b.npy").stat().st_ino
    val, test = (json.loads((tmp_path / split / MANIFEST).read_text()) for split in ("val", "test"))
    assert test["videos"]["b"] == val["videos"]["b"]
    np.testing.assert_array_equal(
        FrameCache(tmp_path, "test").verify().frames("b"), decode(videos / "b.mp4", 4.0, 6, 16)
    )
    again = extract(videos, tmp_path / "test", names=("b", "c"), shared=(tmp_path / "val",))
    assert again.reused == ["b", "c"] and again.linked == [] and again.decoded == []
    other = extract(videos, tmp_path / "train", names=("b",), shared=(tmp_path / "val",), fps=2.0)
    assert other.decoded == ["b"] and other.linked == []  # other settings: not the same frames
