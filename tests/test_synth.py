import json
import os
from collections import Counter, namedtuple

import numpy as np
import pytest

from propy.cli import main
from propy.config import SPLITS, SplitSizes, SynthConfig
from propy.data.annotations import load_annotations
from propy.data.synth import ACTIONS, OPPOSITE, Event, generate, render, render_event, sample_split, write_mp4

from conftest import repo_block, write_tiny_params

TINY = SynthConfig(
    seed=1, videos=SplitSizes(train=8, val=4, test=4), size=32, fps=8,
    events_per_video=[3, 4], event_seconds=[0.5, 1.0], multi_event_queries=1,
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "synthetic"
    stats = generate(TINY, out, progress=False)
    return out, stats


def records(out, split):
    return load_annotations(out / "annotations" / f"{split}.jsonl")


def parse(desc):
    """'a red circle moves left' -> ('red circle', 'moves left')."""
    for action in ACTIONS:
        if desc.endswith(" " + action):
            return desc[: -len(action) - 1].split(" ", 1)[1], action
    raise AssertionError(f"no action in {desc!r}")


Ev = namedtuple("Ev", "obj action ts desc")


def single_events(recs, kinds):
    """{vid: [Ev, ...]} from the single-event queries, in time order."""
    events = {}
    for r in recs:
        if kinds[r.desc_id] != "multi":
            events.setdefault(r.vid_name, []).append(Ev(*parse(r.desc), r.ts, r.desc))
    return {v: sorted(e, key=lambda x: x.ts) for v, e in events.items()}


def test_layout_and_valid_annotations(bench):
    out, stats = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    ids = []
    for split in SPLITS:
        recs = records(out, split)
        vids = {r.vid_name for r in recs}
        assert len(vids) == getattr(TINY.videos, split)
        assert all((out / "videos" / f"{v}.mp4").stat().st_size > 0 for v in vids)
        assert stats["splits"][split]["queries"] == len(recs)
        ids += [r.desc_id for r in recs]
    assert len(ids) == len(set(ids)) == len(kinds)  # desc ids unique across splits, each with a kind
    assert set(kinds.values()) == {"single", "multi", "motion"}
    files = ["annotations", "captions.jsonl", "query_kinds.json", "stats.json", "videos"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert not out.with_name("synthetic.partial").exists()
    assert stats["codec"] == "libx264"


def file_bytes(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(bench, tmp_path):
    out, _ = bench
    again = tmp_path / "again"
    generate(TINY, again, progress=False)
    first, second = file_bytes(out), file_bytes(again)
    assert sorted(second) == sorted(first)
    assert sum(name.endswith(".mp4") for name in first) == 16
    for name, data in first.items():
        assert second[name] == data, name
    other = tmp_path / "other"
    generate(SynthConfig(**{**TINY.__dict__, "seed": 2}), other, progress=False)
    assert (other / "annotations/test.jsonl").read_bytes() != (out / "annotations/test.jsonl").read_bytes()


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2, reason="needs 2 CPUs")
def test_mp4_bytes_do_not_depend_on_the_cpus_available(tmp_path):
    """By default x264 slices each frame over one thread per CPU (2 at this size on 2 CPUs)."""
    video = sample_split(SynthConfig(**{**TINY.__dict__, "size": 128}), "val")[0][0]
    frames = render(video, 128)
    cpus = os.sched_getaffinity(0)
    write_mp4(tmp_path / "all.mp4", frames, TINY.fps, "libx264")
    os.sched_setaffinity(0, {min(cpus)})
    try:
        write_mp4(tmp_path / "one.mp4", frames, TINY.fps, "libx264")
    finally:
        os.sched_setaffinity(0, cpus)
    data = (tmp_path / "all.mp4").read_bytes()
    assert data == (tmp_path / "one.mp4").read_bytes()
    assert b"Lavf" not in data  # no FFmpeg version string in the file


def test_events_tile_the_video_and_multi_queries_join_consecutive_events(bench):
    out, _ = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    for split in SPLITS:
        recs = records(out, split)
        events = single_events(recs, kinds)
        for r in recs:
            evs = events[r.vid_name]
            if kinds[r.desc_id] == "multi":
                parts = r.desc.split(", then ")
                first = [e.desc for e in evs].index(parts[0])
                span = evs[first:first + len(parts)]
                assert 2 <= len(parts) <= 3 and parts == [e.desc for e in span]
                assert r.ts == (span[0].ts[0], span[-1].ts[1])
                assert r.ts[1] - r.ts[0] < r.duration  # never the whole video
        for vid, evs in events.items():
            assert TINY.events_per_video[0] <= len(evs) <= TINY.events_per_video[1]
            bounds = [e.ts for e in evs]
            duration = next(r.duration for r in recs if r.vid_name == vid)
            assert bounds[0][0] == 0.0 and bounds[-1][1] == duration
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # back to back
            assert all(TINY.event_seconds[0] - 0.07 <= e - s <= TINY.event_seconds[1] + 0.07 for s, e in bounds)
            assert len({e.obj for e in evs}) == len(evs)  # each object once per video


def test_motion_rule_and_twins(bench):
    out, stats = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    for split in SPLITS:
        recs = records(out, split)
        events = single_events(recs, kinds)
        twins = set()
        for r in recs:
            if kinds[r.desc_id] == "multi":
                continue
            obj, action = parse(r.desc)
            others = [v for v, evs in events.items()
                      if v != r.vid_name and (obj, OPPOSITE[action]) in [(e.obj, e.action) for e in evs]]
            assert (kinds[r.desc_id] == "motion") == bool(others), r.desc_id
            for v in others:  # a twin: same timings, same shapes and actions except the one flip
                mine, theirs = events[r.vid_name], events[v]
                if [e.ts for e in mine] == [e.ts for e in theirs]:
                    diff = [(m, t) for m, t in zip(mine, theirs) if m.desc != t.desc]
                    flips = [(m, t) for m, t in diff if m.obj == t.obj and OPPOSITE[m.action] == t.action]
                    recoloured = [(m, t) for m, t in diff
                                  if m.obj.split()[1] == t.obj.split()[1] and m.action == t.action]
                    if len(flips) == 1 and len(flips) + len(recoloured) == len(diff) == len(mine):
                        twins.add(frozenset((r.vid_name, v)))
        assert len(twins) == stats["splits"][split]["twin_pairs"] == getattr(TINY.videos, split) // 4


def test_ratio_statistics_match_annotations(bench):
    out, stats = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    for split in SPLITS:
        recs = records(out, split)
        s = stats["splits"][split]
        ratios = np.array([r.ratio for r in recs])
        assert s["ratio"]["mean"] == pytest.approx(ratios.mean(), abs=1e-4)
        assert s["ratio"]["below_half"] == pytest.approx((ratios < 0.5).mean(), abs=1e-4)
        counts = s["ratio_histogram"]["counts"]
        assert {k: sum(v) for k, v in counts.items()} == Counter(kinds[r.desc_id] for r in recs)
        assert s["query_kinds"] == dict(Counter(kinds[r.desc_id] for r in recs))
        single = [r.ratio for r in recs if kinds[r.desc_id] != "multi"]
        assert max(single) < 0.5  # an event is at most 1.0 s of a video of at least 3 events of 0.5 s
        assert s["max_description_repeats"] == 1  # tiny splits never exhaust the deck


def test_captions_cover_each_event_where_visible(bench):
    out, _ = bench
    caps = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    kinds = json.loads((out / "query_kinds.json").read_text())
    singles = {}
    for split in SPLITS:
        singles.update({(r.vid_name, r.ts[0]): r for r in records(out, split) if kinds[r.desc_id] != "multi"})
    assert len(caps) == len(singles)
    for c in caps:
        r = next(r for (v, s), r in singles.items() if v == c["vid_name"] and s <= c["start"] < r.ts[1])
        assert r.desc.startswith(c["caption"] + " ")
        assert r.ts[0] <= c["start"] < c["end"] <= r.ts[1]
        if parse(r.desc)[1] == "appears":  # fades in over the first half: the first quarter is too faint
            assert c["start"] > r.ts[0] and c["end"] == r.ts[1]


@pytest.mark.parametrize("action", list(ACTIONS))
def test_opposite_action_is_the_same_frames_reversed(action):
    event = Event("triangle", "red", action, 9)
    frames = render_event(event, 40, 32)
    reverse = render_event(Event("triangle", "red", OPPOSITE[action], 9), 40, 32)
    assert OPPOSITE[OPPOSITE[action]] == action != OPPOSITE[action]
    np.testing.assert_array_equal(frames, reverse[::-1])
    assert not np.array_equal(frames, reverse)  # and the order does differ


def test_object_is_a_quarter_of_the_frame_and_keeps_its_colour():
    frames = render_event(Event("square", "blue", "moves right", 8), 30, 64)
    still = render_event(Event("circle", "green", "grows", 2), 30, 32)  # scale 0.8, 1.2
    for f in frames:
        mask = np.any(f != 30, axis=-1)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert 12 <= len(rows) <= 16 and 12 <= len(cols) <= 16  # square side 0.85 * 16 px, anti-aliased
        assert tuple(f[rows[len(rows) // 2], cols[len(cols) // 2]]) == (50, 90, 255)
    xs = [np.flatnonzero(np.any(f != 30, axis=-1).any(0)).mean() for f in frames]
    assert np.all(np.diff(xs) > 0)  # moves right
    widths = [np.any(f != 30, axis=-1).any(0).sum() for f in still]
    assert widths[0] < widths[1]


def test_deck_keeps_descriptions_unique_until_exhausted():
    cfg = repo_block(SynthConfig, "synth", seed=0, videos={"train": 240, "val": 60, "test": 60})
    videos, pairs = sample_split(cfg, "test")
    counts = Counter((e.obj, e.action) for v in videos for e in v.events)
    assert max(counts.values()) == 1 and pairs == 15
    assert len({v.name for v in videos}) == 60


def test_replaces_existing_output_and_stale_partial(tmp_path):
    cfg = SynthConfig(**{**TINY.__dict__, "videos": SplitSizes(train=2, val=1, test=1)})
    out = tmp_path / "synthetic"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "old.mp4").write_text("stale")
    partial = tmp_path / "synthetic.partial"
    (partial / "videos").mkdir(parents=True)
    (partial / "videos" / "train0.mp4").write_text("from another run with other settings")
    generate(cfg, out, progress=False)
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["test0.mp4", "train0.mp4", "train1.mp4", "val0.mp4"]
    assert (out / "videos" / "train0.mp4").read_bytes()[4:8] == b"ftyp"
    assert not partial.exists()


def test_cli(tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml", {
        "synth": {"seed": 0, "videos": {"train": 2, "val": 1, "test": 1}, "size": 32, "event_seconds": [0.5, 0.5]}})
    assert main(["synth", "--params", str(params), "--out", str(tmp_path / "bench")]) == 0
    assert "train: 2 videos" in capsys.readouterr().out
    assert len(load_annotations(tmp_path / "bench" / "annotations" / "val.jsonl")) >= 3


def test_interrupted_run_resumes_without_rewriting_finished_videos(bench, tmp_path, monkeypatch):
    import propy.data.synth as synth

    real, calls = synth.write_mp4, []

    def crash_after_five(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args[0].name)
        real(*args)

    monkeypatch.setattr(synth, "write_mp4", crash_after_five)
    out = tmp_path / "synthetic"
    with pytest.raises(KeyboardInterrupt):
        generate(TINY, out, progress=False)
    assert not out.exists() and len(list((tmp_path / "synthetic.partial" / "videos").iterdir())) == 5
    done, calls[:] = list(calls), []
    monkeypatch.setattr(synth, "write_mp4", lambda *args: (calls.append(args[0].name), real(*args)))
    generate(TINY, out, progress=False)
    assert len(calls) == sum(TINY.videos.__dict__.values()) - 5 and not set(calls) & set(done)
    for name in ["annotations/test.jsonl", "videos/" + done[0]]:
        assert (out / name).read_bytes() == (bench[0] / name).read_bytes()
