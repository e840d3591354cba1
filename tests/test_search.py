"""``propy index`` + ``propy search`` on the tiny benchmark: the same rankings as ``propy evaluate``,
videos the benchmark never produces, incremental updates, resuming, and refusing another model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from propy.cli import main
from propy.config import load_params
from propy.data.annotations import load_annotations
from propy.errors import ConfigError, DataError
from propy.model.backbone import create_clip, load_clip
from propy.model.checkpoint import save_trained
from propy.model.network import build_model
from propy.runtime.files import atomic_torch_save
from propy.search.engine import (
    Encoder,
    Gallery,
    add_videos,
    distinct_moments,
    open_index,
)
from propy.search.store import JOURNAL, IndexStore
from tests.conftest import REPO, layout_args, run_evaluate, tiny_layout, write_tiny_params


@pytest.fixture(scope="module")
def study(tiny_bench, tmp_path_factory):
    """Params (saved random CLIP), an untrained ProPy saved as ``propy train`` saves it, the test
    split's videos copied into their own folder, and ``propy evaluate`` outputs of two variants."""
    root = tmp_path_factory.mktemp("search")
    torch.manual_seed(0)
    atomic_torch_save(root / "clip.pt", create_clip(str(REPO / "configs" / "propy-tiny.json")).state_dict())
    params_path = write_tiny_params(root / "params.yaml", {"clip": {"pretrained": str(root / "clip.pt")}})
    layout = tiny_layout(tiny_bench)
    params = load_params(params_path, "tiny")
    torch.manual_seed(1)
    model = build_model(params.model, load_clip(params.clip).model)
    save_trained(root / "models" / "tiny" / "best.pt", model.trainable_state_dict(), params, epoch=1, val_SumR=1.0)
    records = load_annotations(layout.annotations("test"))
    videos = root / "videos"
    videos.mkdir()
    for name in dict.fromkeys(r.vid_name for r in records):
        shutil.copy2(layout.videos / f"{name}.mp4", videos / f"{name}.mp4")
    for variant in ("tiny", "zs_maxframe"):
        weights = ["--checkpoint", str(root / "models" / "tiny" / "best.pt")] if variant == "tiny" else []
        metrics, results = root / "metrics" / f"{variant}.json", root / "results" / variant
        assert run_evaluate(params_path, layout_args(tiny_bench), variant, metrics, results, *weights) == 0
    return root, params_path, records


def _index(study, out, variant="tiny", folder=None, **kwargs):
    root, params_path, _ = study
    return add_videos(
        folder or root / "videos",
        out,
        params_path,
        variant,
        root / "models" / "tiny" / "best.pt",
        device="cpu",
        show_progress=False,
        **kwargs,
    )


TIE = 1e-6  # scores this close may come out in either order


@pytest.mark.parametrize("variant", ["tiny", "zs_maxframe"])
def test_search_ranks_like_evaluate(study, tmp_path, variant):
    root, _, records = study
    run = _index(study, tmp_path / "index", variant)
    assert (len(run.encoded), run.skipped) == (4, {})
    index = open_index(tmp_path / "index", device="cpu")
    rankings = [json.loads(line) for line in (root / "results" / variant / "rankings.jsonl").read_text().splitlines()]
    events = np.load(root / "results" / variant / "events.npz")
    proposals = events["proposals"]
    assert len(rankings) == len(records) >= 4
    for q, (record, expected) in enumerate(zip(records, rankings)):
        hits = index.search(record.desc, k=10)
        # evaluate's order, up to swaps of scores within float32 rounding (a base and its twin can tie:
        # batched and one-by-one encodes round apart)
        score = {h.path.stem: h.score for h in hits}
        assert sorted(score) == sorted(expected["top10"]), record.desc
        assert all(score[a] >= score[b] - TIE for a, b in zip(expected["top10"], expected["top10"][1:])), record.desc
        own = next(h for h in hits if h.path.stem == record.vid_name)
        assert own.score == pytest.approx(expected["score"], abs=1e-5)
        np.testing.assert_allclose(own.event_scores, events["gt_event_scores"][q], atol=1e-5)
        best = int(np.argmax(own.event_scores))  # the best moment is the best event's span in seconds
        assert (own.moments[0].start, own.moments[0].end) == pytest.approx(
            tuple(proposals[best] * record.duration), abs=1e-5
        )


def test_search_cli_text_json_and_html(study, tmp_path, capsys):
    root, params_path, records = study
    assert (
        main(
            [
                "index",
                str(root / "videos"),
                "--out",
                str(tmp_path / "idx"),
                "--params",
                str(params_path),
                "--variant",
                "tiny",
                "--checkpoint",
                str(root / "models" / "tiny" / "best.pt"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "4 videos (4 encoded now, 0 unchanged" in capsys.readouterr().out
    page = tmp_path / "page.html"
    assert (
        main(
            [
                "search",
                str(tmp_path / "idx"),
                records[0].desc,
                "-k",
                "3",
                "--json",
                "--html",
                str(page),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["videos"], len(result["hits"])) == (4, 3)
    assert [h["rank"] for h in result["hits"]] == [1, 2, 3]
    assert result["hits"][0]["score"] >= result["hits"][1]["score"] >= result["hits"][2]["score"]
    text = page.read_text()
    moments = sum(len(h["moments"]) for h in result["hits"])
    assert text.count('src="data:image/jpeg;base64,') == moments
    assert text.count("<svg") == 3 and records[0].desc in text
    assert main(["search", str(tmp_path / "idx"), records[0].desc, "-k", "2", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  1. ") and "moments: " in lines[1] and len(lines) == 3


def _write_video(
    path: Path, fmt: str, codec: str, width: int, height: int, fps: int, frames: int, pix_fmt: str = "yuv420p"
) -> None:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[:, : (i * 7) % width] = (200, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_index_reads_any_video_pyav_reads_and_skips_bad_files_with_a_reason(study, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub" / "deeper").mkdir(parents=True)
    good = {  # path: (format, codec, width, height, fps, frames, pix_fmt) -> duration frames / fps
        "wide.mkv": ("matroska", "libx264", 98, 62, 25, 50, "yuv420p"),
        "sub/clip.webm": ("webm", "libvpx-vp9", 64, 48, 30, 40, "yuv420p"),
        "sub/old.avi": ("avi", "mpeg4", 120, 90, 12, 30, "yuv420p"),
        "sub/deeper/tall.mov": ("mov", "mjpeg", 40, 80, 60, 90, "yuvj420p"),
        "broadcast.ts": ("mpegts", "mpeg2video", 64, 64, 25, 25, "yuv420p"),
        "short.mp4": ("mp4", "mpeg4", 32, 32, 8, 2, "yuv420p"),  # 2 frames < Nf = 4
    }
    for name, spec in good.items():
        _write_video(folder / name, *spec)
    _write_audio_only(folder / "sub" / "speech.m4a")
    (folder / "empty.mp4").touch()
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"ignored: hidden files are not walked")
    run = _index(study, tmp_path / "index", folder=folder)
    assert sorted(run.encoded) == sorted(good)
    assert set(run.skipped) == {"sub/speech.m4a", "empty.mp4", "notes.txt"}
    assert run.skipped["sub/speech.m4a"] == "no video stream"
    assert run.skipped["empty.mp4"] == "empty file (0 bytes)"
    assert run.skipped["notes.txt"].startswith("cannot decode video")
    manifest = IndexStore(tmp_path / "index").require_manifest()
    assert {s["path"]: s["reason"] for s in manifest["skipped"]} == run.skipped
    durations = {v["path"]: v["duration"] for v in manifest["videos"]}
    for name, (_, _, _, _, fps, frames, _) in good.items():
        assert durations[name] == pytest.approx(frames / fps, rel=0.15), name
    index = open_index(tmp_path / "index", device="cpu")
    hits = index.search("a red square", k=100)
    assert sorted(h.path.relative_to(folder).as_posix() for h in hits) == sorted(good)
    for hit in hits:
        assert all(0 <= m.start < m.end <= hit.duration + 1e-9 for m in hit.moments)
    again = _index(study, tmp_path / "index", folder=folder)  # bad files are not retried until they change
    assert (again.encoded, again.unchanged, again.skipped) == ([], len(good), run.skipped)


def test_index_is_incremental(study, tmp_path, monkeypatch):
    root, _, _ = study
    folder = tmp_path / "videos"
    shutil.copytree(root / "videos", folder)
    first = _index(study, tmp_path / "index", folder=folder)
    store = IndexStore(tmp_path / "index")
    before = store.require_manifest()
    rows = {v["path"]: store.events(before)[i].copy() for i, v in enumerate(before["videos"])}
    (folder / "test3.mp4").unlink()
    (folder / "new").mkdir()
    shutil.copy2(folder / "test0.mp4", folder / "new" / "copy.mp4")
    shutil.copy(folder / "test2.mp4", folder / "test1.mp4")  # changed content, size and mtime
    decoded = []
    frames = Encoder.frames
    monkeypatch.setattr(Encoder, "frames", lambda self, path: decoded.append(path.name) or frames(self, path))
    second = _index(study, tmp_path / "index", folder=folder)
    assert sorted(first.encoded) == ["test0.mp4", "test1.mp4", "test2.mp4", "test3.mp4"]
    assert sorted(second.encoded) == ["new/copy.mp4", "test1.mp4"] and sorted(decoded) == ["copy.mp4", "test1.mp4"]
    assert (second.removed, second.unchanged, second.videos) == (["test3.mp4"], 2, 4)
    after = store.require_manifest()
    assert [v["path"] for v in after["videos"]] == ["new/copy.mp4", "test0.mp4", "test1.mp4", "test2.mp4"]
    events = store.events(after)
    np.testing.assert_array_equal(events[1], rows["test0.mp4"])  # kept rows are copied, not re-encoded
    np.testing.assert_array_equal(events[3], rows["test2.mp4"])
    np.testing.assert_allclose(events[0], rows["test0.mp4"], atol=1e-6)  # same content, same events
    np.testing.assert_allclose(events[2], rows["test2.mp4"], atol=1e-6)
    decoded.clear()
    third = _index(study, tmp_path / "index", folder=folder)
    assert (third.encoded, decoded, third.unchanged) == ([], [], 4)
    assert store.require_manifest()["events"] == after["events"]  # up to date: nothing rewritten
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [after["events"], "index.json"]


def test_an_interrupted_update_keeps_the_old_index_and_resumes(study, tiny_bench, tmp_path, monkeypatch):
    root, _, _ = study
    params_one = write_tiny_params(
        tmp_path / "params.yaml", {"clip": {"pretrained": str(root / "clip.pt")}, "eval": {"batch_videos": 1}}
    )
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy2(root / "videos" / "test0.mp4", folder / "a.mp4")
    add = lambda: add_videos(folder, tmp_path / "index", params_one, "zs_maxframe", device="cpu", show_progress=False)  # noqa: E731
    add()
    for i, name in enumerate(["test1", "test2", "test3", "test0", "test1"]):
        shutil.copy2(root / "videos" / f"{name}.mp4", folder / f"b{i}.mp4")
    decoded = []
    frames = Encoder.frames

    def interrupted(self, path):
        if len(decoded) == 3:
            raise KeyboardInterrupt
        decoded.append(path.name)
        return frames(self, path)

    monkeypatch.setattr(Encoder, "frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        add()
    assert len(open_index(tmp_path / "index", with_model=False).gallery) == 1  # the committed index is intact
    with open(tmp_path / "index" / JOURNAL, "a") as journal:
        journal.write('{"file": "parts/torn')  # an append cut short is ignored
    monkeypatch.setattr(Encoder, "frames", lambda self, path: decoded.append(path.name) or frames(self, path))
    resumed = add()
    assert decoded == ["b0.mp4", "b1.mp4", "b2.mp4", "b3.mp4", "b4.mp4"]  # each decoded once across both runs
    assert (sorted(resumed.encoded), resumed.resumed, resumed.unchanged) == (["b3.mp4", "b4.mp4"], 3, 1)
    fresh = tmp_path / "fresh"
    add_videos(folder, fresh, params_one, "zs_maxframe", device="cpu", show_progress=False)
    a, b = open_index(tmp_path / "index", with_model=False), open_index(fresh, with_model=False)
    assert a.gallery.paths == b.gallery.paths
    np.testing.assert_allclose(a.gallery.events, b.gallery.events, atol=1e-6)
    assert not (tmp_path / "index" / JOURNAL).exists() and not (tmp_path / "index" / "parts").exists()


def test_refuses_an_index_of_another_model(study, tmp_path, capsys):
    root, params_path, records = study
    _index(study, tmp_path / "index")
    params = load_params(params_path, "tiny")
    torch.manual_seed(5)  # re-trained weights: same settings, other tensors
    other = build_model(params.model, load_clip(params.clip).model)
    save_trained(tmp_path / "retrained.pt", other.trainable_state_dict(), params, epoch=2, val_SumR=2.0)
    with pytest.raises(ConfigError, match=r"built with another model(.|\n)*trained: index 'sha256:"):
        open_index(tmp_path / "index", checkpoint=tmp_path / "retrained.pt", device="cpu")
    code = main(["search", str(tmp_path / "index"), records[0].desc, "--variant", "zs_maxframe"])
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err and "model.kind: index 'propy', now 'maxframe'" in err
    with pytest.raises(ConfigError, match="model.kind"):
        _index(study, tmp_path / "index", variant="zs_meanpool")
    with pytest.raises(ConfigError, match="indexes the videos of"):
        _index(study, tmp_path / "index", folder=tmp_path)
    with pytest.raises(DataError, match="no video index here"):
        open_index(tmp_path / "nothing")


def test_gallery_ranks_ties_in_index_order_and_lists_distinct_moments():
    events = np.zeros((3, 3, 2), np.float32)
    events[:, :, 0] = [[0.2, 0.5, 0.1], [0.5, 0.0, 0.0], [0.9, 0.1, 0.3]]
    proposals = np.array([[0.0, 0.5], [0.5, 1.0], [0.0, 1.0]])
    gallery = Gallery(Path("videos"), [f"v{i}" for i in range(3)], np.array([10.0, 20.0, 4.0]), proposals, events)
    hits = gallery.search(np.array([1.0, 0.0]), k=5, moments=3)
    assert [(h.path.name, h.score) for h in hits] == [("v2", pytest.approx(0.9)), ("v0", 0.5), ("v1", 0.5)]
    assert [(m.start, m.end) for m in hits[0].moments] == [(0.0, 2.0), (2.0, 4.0)]  # not the whole video
    assert [(m.start, m.end) for m in hits[1].moments] == [(5.0, 10.0), (0.0, 5.0)]
    assert [h.path.name for h in gallery.search(np.array([1.0, 0.0]), k=2)] == ["v2", "v0"]
    spans = np.array([[0, 10], [0, 5], [4, 6], [6, 10]], float)
    picked = distinct_moments(np.array([0.9, 0.8, 0.7, 0.6]), spans, 3)
    assert [m.event for m in picked] == [0]  # the whole video overlaps every other moment
    picked = distinct_moments(np.array([0.1, 0.8, 0.7, 0.6]), spans, 3)
    assert [m.event for m in picked] == [1, 3]


# --------------------------------------------------------------------------- issue 23: bad input, second sweep


def test_a_symlink_loop_lists_each_real_file_once(tmp_path):
    """Issue 23 case 4: ``ln -s . vids/self`` used to list one video 41 times (until ELOOP)."""
    from propy.search.store import scan

    videos = tmp_path / "vids"
    (videos / "sub").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.mp4"):
        (videos / name).write_bytes(b"x")
    (videos / "self").symlink_to(".")
    assert [k.path for k in scan(videos)] == ["a.mp4", "sub/b.mp4"]
    (videos / "again.mp4").symlink_to("sub/b.mp4")  # one real file under two names: under the first one met
    assert [k.path for k in scan(videos)] == ["a.mp4", "again.mp4"]


def _index_copy(study, tmp_path, extra=None):
    """The study's videos copied (plus ``extra``: name -> a copy of the first video) and indexed."""
    root, params_path, _ = study
    folder = tmp_path / "videos"
    shutil.copytree(root / "videos", folder)
    for name in extra or ():
        shutil.copy2(sorted(folder.iterdir())[0], folder / name)
    assert (
        main(
            [
                "index",
                str(folder),
                "--out",
                str(tmp_path / "idx"),
                "--params",
                str(params_path),
                "--variant",
                "tiny",
                "--checkpoint",
                str(root / "models" / "tiny" / "best.pt"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return tmp_path / "idx"


def test_a_file_name_that_is_not_utf8_is_shown_escaped(study, tmp_path, capsys):
    """Issue 23 case 7: such a name made ``search --html`` fail with UnicodeEncodeError."""
    import os

    index = _index_copy(study, tmp_path, [os.fsdecode(b"caf\xe9.mp4")])
    capsys.readouterr()
    page = tmp_path / "page.html"
    assert main(["search", str(index), study[2][0].desc, "-k", "5", "--html", str(page), "--device", "cpu"]) == 0
    assert "caf\\xe9.mp4  moments: " in capsys.readouterr().out
    assert page.read_text().count("caf\\xe9.mp4</h2>") == 1


def test_an_empty_query_and_nan_events_are_errors(study, tmp_path, capsys):
    """Issue 23 case 6: an empty query was searched (exit 0); an index whose events hold NaN answered
    "top 0 of 5" with exit 0."""
    index = _index_copy(study, tmp_path)
    capsys.readouterr()
    assert main(["search", str(index), "  ", "--device", "cpu"]) == 2
    assert "error: the query is empty" in capsys.readouterr().err
    store = IndexStore(index)
    manifest = store.manifest()
    events = np.load(store.dir / manifest["events"])
    events[2, 1, 0] = np.nan
    np.save(store.dir / manifest["events"], events)
    assert main(["search", str(index), study[2][0].desc, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"the events of 1 video(s) are not finite numbers (NaN or inf), e.g. {manifest['videos'][2]['path']}" in err


def test_an_unwritable_index_folder_fails_before_any_video_is_encoded(study, tmp_path, monkeypatch):
    """Issue 23 case 8: the output was found unwritable only when the first encoded batch was stored."""
    import propy.search.engine as search

    built = []
    monkeypatch.setattr(search, "Encoder", lambda *args: built.append(args))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match=r"file: is a file, so .*idx cannot be created inside it"):
        _index(study, tmp_path / "file" / "idx")
    assert built == []
