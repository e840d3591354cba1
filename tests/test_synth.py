import json
import os
import re
from collections import Counter

import numpy as np
import pytest
from conftest import repo_block, write_tiny_params

from propy.cli import main
from propy.config import QUERY_KINDS, SPLITS, SplitSizes, SynthConfig
from propy.data.annotations import load_annotations
from propy.data.synth import (
    ACTIONS,
    FILLER_COLOUR,
    FILLER_SHAPES,
    OPPOSITE,
    Event,
    Video,
    _kind_plan,
    captions,
    generate,
    render,
    render_event,
    sample_split,
    split_records,
    split_stats,
    write_mp4,
)

TINY = repo_block(
    SynthConfig,
    "synth",
    seed=1,
    videos={"train": 8, "val": 4, "test": 4},
    size=32,
    fps=8,
    events_per_video=[6, 8],
    event_seconds=[0.5, 1.0],
    kinds_per_pair=2,
)
# words a query may use that no single frame can show: the verbs and the joins
STRUCTURE_WORDS = {"a", "an", "ends", "then", "just", "after"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "synthetic"
    stats = generate(TINY, out, progress=False)
    return out, stats


def records(out, split):
    return load_annotations(out / "annotations" / f"{split}.jsonl")


def test_layout_kinds_and_rivals(bench):
    out, stats = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    rivals = json.loads((out / "rivals.json").read_text())
    ids = []
    for split in SPLITS:
        recs = records(out, split)
        vids = {r.vid_name for r in recs}
        assert all((out / "videos" / f"{v}.mp4").stat().st_size > 0 for v in vids)
        assert stats["splits"][split]["queries"] == len(recs)
        for r in recs:  # every query has one rival, another video of its split's gallery
            assert len(rivals[r.desc_id]) == 1 and rivals[r.desc_id][0] in vids - {r.vid_name}
        ids += [r.desc_id for r in recs]
    assert len(ids) == len(set(ids)) == len(kinds) == len(rivals)  # desc ids unique across splits
    assert set(kinds.values()) <= set(QUERY_KINDS)
    files = ["annotations", "captions.jsonl", "query_kinds.json", "rivals.json", "stats.json", "videos"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert not out.with_name("synthetic.partial").exists()
    assert stats["codec"] == "libx264"


def file_bytes(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(bench, tmp_path):
    """Also when the videos are encoded in two processes (the bench: in this one)."""
    out, _ = bench
    again = tmp_path / "again"
    generate(TINY, again, progress=False, workers=2)
    first, second = file_bytes(out), file_bytes(again)
    assert sorted(second) == sorted(first)
    assert sum(name.endswith(".mp4") for name in first) == sum(TINY.videos.__dict__.values())
    for name, data in first.items():
        assert second[name] == data, name
    other = tmp_path / "other"
    generate(SynthConfig(**{**TINY.__dict__, "seed": 2}), other, progress=False)
    assert (other / "annotations/test.jsonl").read_bytes() != (out / "annotations/test.jsonl").read_bytes()


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2, reason="needs 2 CPUs")
def test_mp4_bytes_do_not_depend_on_the_cpus_available(tmp_path):
    """By default x264 slices each frame over one thread per CPU (2 at this size on 2 CPUs)."""
    video = sample_split(SynthConfig(**{**TINY.__dict__, "size": 128}), "val")[0]
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


DEFAULT = repo_block(SynthConfig, "synth")


@pytest.fixture(scope="module")
def default_test_split():
    """The default test split's videos (sampled only: no rendering) and their probes' texts."""
    return sample_split(DEFAULT, "test")


def _texts(v):
    return [e.text for e in v.events]


def test_each_kind_rival_differs_in_what_the_kind_tests(default_test_split):
    videos = default_test_split
    seen = Counter()
    for v in videos:
        rival = videos[v.partner]
        assert rival.partner == videos.index(v)
        kinds = [p.kind for p in v.probes]
        assert len(set(kinds)) == len(kinds) == DEFAULT.kinds_per_pair and [p.kind for p in rival.probes] == kinds
        assert len({e.obj for e in v.events if not e.filler}) == sum(not e.filler for e in v.events)  # distinct objects
        for probe, theirs in zip(v.probes, rival.probes):
            seen[probe.kind] += 1
            mine = [v.events[s] for s in probe.slots]
            other = [rival.events[s] for s in theirs.slots]
            assert list(probe.slots) == list(range(probe.slots[0], probe.slots[-1] + 1))  # one right after another
            if probe.kind in ("appearance", "order"):  # the same anchor, then the moment changed in one way
                assert other[0] == mine[0] and other[1].frames == mine[1].frames
                if probe.kind == "appearance":  # same shape and action, another colour
                    assert (other[1].shape, other[1].action) == (mine[1].shape, mine[1].action)
                    assert other[1].colour != mine[1].colour
                else:  # same object, the opposite action: its frames reversed
                    assert (other[1].obj, other[1].action) == (mine[1].obj, OPPOSITE[mine[1].action])
                    np.testing.assert_array_equal(render_event(other[1], 30, 16), render_event(mine[1], 30, 16)[::-1])
            elif probe.kind == "composition":  # the rival shows the same events in order, none next to another
                where = [rival.events.index(e) for e in mine]
                assert where == sorted(where) and all(b - a >= 2 for a, b in zip(where, where[1:]))
            else:  # context: neighbour then moment here; in the rival both, but never right after each other
                i, j = rival.events.index(mine[0]), rival.events.index(mine[1])
                assert abs(i - j) >= 2
            assert all(not e.filler for e in mine)
        # fillers share neither colour nor shape with any queried object
        assert all(e.shape in FILLER_SHAPES and e.colour == FILLER_COLOUR for e in v.events if e.filler)
        assert all(e.shape not in FILLER_SHAPES and e.colour != FILLER_COLOUR for e in v.events if not e.filler)
    assert set(seen) == set(QUERY_KINDS) and max(seen.values()) - min(seen.values()) <= 2  # kind_mix: equal shares


def test_the_default_test_split_has_the_power_the_study_needs(default_test_split):
    """Issue 20's design: >= 1,000 test videos (R@100 by chance <= 10%), >= 2,000 test queries, several per video."""
    queries = split_records(default_test_split, DEFAULT.fps)
    per_video = Counter(r.vid_name for r in queries.records)
    assert len(per_video) >= 1000 and len(queries.records) >= 2000  # the gallery: videos with a query
    assert 100 / len(per_video) <= 0.1  # R@100 by chance
    assert np.mean(list(per_video.values())) > 2.5


@pytest.mark.parametrize("per_pair", [1, 2, 3, 4])
def test_kind_plan_gives_each_pair_distinct_kinds_in_the_mix_shares(per_pair):
    cfg = SynthConfig(
        **{**DEFAULT.__dict__, "kinds_per_pair": per_pair, "kind_mix": {"appearance": 2, "order": 1, "composition": 1}}
    )
    plan = _kind_plan(cfg, 40, np.random.default_rng(0))
    assert len(plan) == 40 and all(len(set(kinds)) == len(kinds) == min(per_pair, 3) for kinds in plan)
    counts = Counter(k for kinds in plan for k in kinds)
    # shares 2:1:1 of 40 x per_pair probes, each kind at most once per pair
    expected = {1: (20, 10, 10), 2: (40, 20, 20), 3: (40, 40, 40), 4: (40, 40, 40)}[per_pair]
    assert (counts["appearance"], counts["order"], counts["composition"]) == expected and "context" not in counts


def test_written_queries_hold_in_their_own_video_only(bench):
    """Checked on the descriptions: the text of every event, run and adjacency of every other video."""
    out, _ = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    for split in SPLITS:
        videos = {v.name: v for v in sample_split(TINY, split)}
        for r in records(out, split):
            for name, w in videos.items():
                texts = _texts(w)
                shown = set(texts) | {", then ".join(texts[i : i + n]) for n in (2, 3) for i in range(len(texts))}
                shown |= {f"{b} just after {a}" for a, b in zip(texts, texts[1:])}
                assert (r.desc in shown) == (name == r.vid_name), (r.desc_id, name)
            if kinds[r.desc_id] == "context":
                assert re.fullmatch(r".+ just after .+", r.desc)


def test_default_ratios_are_tvr_like_and_every_query_word_is_grounded(default_test_split):
    videos = default_test_split
    queries = split_records(videos, DEFAULT.fps)
    stats = split_stats(videos, queries)
    assert stats["ratio"]["below_0.2"] > 0.6  # most moments are short against their video
    single = [r.ratio for r in queries.records if queries.kinds[r.desc_id] != "composition"]
    assert np.median(single) < 0.2
    assert sum(stats["query_kinds"].values()) == len(queries.records) and min(stats["query_kinds"].values()) >= 40
    caption_words = {w for v in videos for c in captions(v, DEFAULT.fps, "test") for w in c["caption"].split()}
    query_words = {w.strip(",") for r in queries.records for w in r.desc.split()}
    assert (
        query_words - STRUCTURE_WORDS <= caption_words
    )  # colours, shapes, on the left/right, at the top/bottom, big/small


def test_captions_describe_frame_states():
    event = Event("circle", "red", "ends on the left", 16)
    video = Video("v", 30, (Event("ring", FILLER_COLOUR, "ends big", 8), event), (), 0)
    caps = captions(video, 8, "train")
    assert [c["caption"] for c in caps] == [
        "a grey ring is small",
        "a grey ring",
        "a grey ring is big",
        "a red circle is on the right",
        "a red circle",
        "a red circle is on the left",
    ]
    assert caps[0]["start"] == 0.0 and caps[-1]["end"] == 3.0  # 24 frames at 8 fps, back to back
    assert all(a["end"] == b["start"] for a, b in zip(caps, caps[1:]))
    # x = 0.75 - 0.5 t at t = (i + 0.5) / 16: above 0.6 for i <= 4 (5 frames), below 0.4 from i = 11
    assert (caps[3]["end"] - caps[3]["start"], caps[5]["start"]) == (5 / 8, 1.0 + 11 / 8)


def test_ratio_statistics_match_annotations(bench):
    out, stats = bench
    kinds = json.loads((out / "query_kinds.json").read_text())
    for split in SPLITS:
        recs = records(out, split)
        s = stats["splits"][split]
        ratios = np.array([r.ratio for r in recs])
        assert s["ratio"]["mean"] == pytest.approx(ratios.mean(), abs=1e-4)
        assert s["ratio"]["below_0.2"] == pytest.approx((ratios < 0.2).mean(), abs=1e-4)
        counts = s["ratio_histogram"]["counts"]
        assert {k: sum(v) for k, v in counts.items()} == Counter(kinds[r.desc_id] for r in recs)
        assert s["query_kinds"] == dict(Counter(kinds[r.desc_id] for r in recs))


@pytest.mark.parametrize("action", list(ACTIONS))
def test_opposite_action_is_the_same_frames_reversed(action):
    event = Event("triangle", "red", action, 9)
    frames = render_event(event, 40, 32)
    reverse = render_event(Event("triangle", "red", OPPOSITE[action], 9), 40, 32)
    assert OPPOSITE[OPPOSITE[action]] == action != OPPOSITE[action]
    np.testing.assert_array_equal(frames, reverse[::-1])
    assert not np.array_equal(frames, reverse)  # and the order does differ


def test_object_is_a_quarter_of_the_frame_and_keeps_its_colour():
    frames = render_event(Event("square", "blue", "ends on the right", 8), 30, 64)
    still = render_event(Event("circle", "green", "ends big", 2), 30, 32)  # scale 0.8, 1.2
    for f in frames:
        mask = np.any(f != 30, axis=-1)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert 12 <= len(rows) <= 16 and 12 <= len(cols) <= 16  # square side 0.85 * 16 px, anti-aliased
        assert tuple(f[rows[len(rows) // 2], cols[len(cols) // 2]]) == (50, 90, 255)
    xs = [np.flatnonzero(np.any(f != 30, axis=-1).any(0)).mean() for f in frames]
    assert np.all(np.diff(xs) > 0)  # moves right
    widths = [np.any(f != 30, axis=-1).any(0).sum() for f in still]
    assert widths[0] < widths[1]


def test_replaces_existing_output_and_stale_partial(tmp_path):
    cfg = SynthConfig(**{**TINY.__dict__, "videos": SplitSizes(train=2, val=2, test=2)})
    out = tmp_path / "synthetic"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "old.mp4").write_text("stale")
    partial = tmp_path / "synthetic.partial"
    (partial / "videos").mkdir(parents=True)
    (partial / "videos" / "train0.mp4").write_text("from another run with other settings")
    generate(cfg, out, progress=False)
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "test0.mp4",
        "test1.mp4",
        "train0.mp4",
        "train1.mp4",
        "val0.mp4",
        "val1.mp4",
    ]
    assert (out / "videos" / "train0.mp4").read_bytes()[4:8] == b"ftyp"
    assert not partial.exists()


def test_cli(tmp_path, capsys):
    params = write_tiny_params(
        tmp_path / "params.yaml",
        {"synth": {"seed": 0, "videos": {"train": 2, "val": 2, "test": 2}, "size": 32, "event_seconds": [0.5, 0.5]}},
    )
    assert main(["synth", "--params", str(params), "--out", str(tmp_path / "bench")]) == 0
    assert "train: 2 videos" in capsys.readouterr().out
    assert len(load_annotations(tmp_path / "bench" / "annotations" / "val.jsonl")) == 2  # one pair, two probes


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
        generate(TINY, out, progress=False, workers=1)  # in this process, where write_mp4 is patched
    assert not out.exists() and len(list((tmp_path / "synthetic.partial" / "videos").iterdir())) == 5
    done, calls[:] = list(calls), []
    monkeypatch.setattr(synth, "write_mp4", lambda *args: (calls.append(args[0].name), real(*args)))
    generate(TINY, out, progress=False, workers=1)
    assert len(calls) == sum(TINY.videos.__dict__.values()) - 5 and not set(calls) & set(done)
    for name in ["annotations/test.jsonl", "videos/" + done[0]]:
        assert (out / name).read_bytes() == (bench[0] / name).read_bytes()
