import numpy as np
import pytest
import torch
from conftest import REPO

from propy.config import ClipConfig
from propy.data.annotations import Record, load_annotations
from propy.data.cache import FrameCache
from propy.data.datasets import (
    VideoClips,
    cached_queries,
    epoch_batches,
    query_tokens,
    rival_groups,
)
from propy.errors import DataError
from propy.model.backbone import load_clip

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def rec(vid, desc_id, desc="a red circle moves left"):
    return Record(vid_name=vid, desc_id=desc_id, desc=desc, duration=4.0, ts=(0.0, 1.0))


def test_epoch_batches_shuffle_per_epoch_and_drop_the_incomplete_batch():
    batches = epoch_batches(10, 3, seed=7, epoch=0)
    assert [len(b) for b in batches] == [3, 3, 3]
    used = np.concatenate(batches)
    assert len(set(used.tolist())) == 9 and set(used.tolist()) <= set(range(10))
    again = epoch_batches(10, 3, seed=7, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # a function of (seed, epoch)
    other = np.concatenate(epoch_batches(10, 3, seed=7, epoch=1))
    assert not np.array_equal(used, other)
    with pytest.raises(DataError, match="batch_videos is 11 but the training split has only 10 videos"):
        epoch_batches(10, 11, seed=0, epoch=0)
    with pytest.raises(DataError, match=r"only 10 videos; the value is train\.batch_videos \(set by presets"):
        epoch_batches(10, 11, seed=0, epoch=0, setting="train.batch_videos (set by presets.paper ...)")


def test_epoch_batches_keep_rival_groups_together():
    plain = epoch_batches(8, 4, seed=3, epoch=0)
    assert [b.tolist() for b in plain] == [b.tolist() for b in epoch_batches(8, 4, seed=3, epoch=0, together=[])]
    together = [[0, 5], [1, 2], [3, 7], [4, 6]]
    for epoch in range(5):
        batches = [set(b.tolist()) for b in epoch_batches(8, 4, seed=3, epoch=epoch, together=together)]
        assert sorted(v for b in batches for v in b) == list(range(8))
        assert all(set(g) <= b for g in together for b in batches if set(g) & b)  # never split across batches


def test_rival_groups_link_a_video_and_its_rivals():
    records = [rec("v0", "d0"), rec("v1", "d1"), rec("v2", "d2"), rec("v3", "d3"), rec("v4", "d4")]
    rivals = {"d0": ["v1"], "d1": ["v0"], "d2": ["v4"], "d3": ["gone"]}
    assert rival_groups(records, ["v0", "v1", "v2", "v3", "v4"], rivals) == [[0, 1], [2, 4]]


def test_cached_queries_group_by_video_and_skip_uncached_videos():
    records = [rec("a", "1"), rec("b", "2"), rec("a", "3"), rec("c", "4"), rec("b", "5")]
    with pytest.warns(UserWarning, match="ann.jsonl: 1 video"):
        queries = cached_queries(records, ["a", "b"], "ann.jsonl")
    assert queries.vid_names == ["a", "b"]
    assert [r.desc_id for r in queries.records] == ["1", "3", "2", "5"]
    assert queries.groups == [[0, 1], [2, 3]]
    with pytest.raises(DataError, match="ann.jsonl: none of its videos"), pytest.warns(UserWarning, match="3 video"):
        cached_queries(records, ["z"], "ann.jsonl")


@pytest.fixture(scope="module")
def train_cache(tiny_bench):
    return FrameCache(tiny_bench / "cache", "train")


def expected_frames(frames_uint8, index):
    """Normalisation written out in numpy: (x / 255 - mean) / std, channels first."""
    x = frames_uint8[index].astype(np.float64) / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)
    return np.transpose(x, (0, 3, 1, 2))


def test_eval_clips_are_normalised_segment_centres(train_cache):
    clips = VideoClips(train_cache, train_cache.names, 4, MEAN, STD, train=False, seed=0)
    assert len(clips) == len(train_cache.names)
    vid = train_cache.names[0]
    frames = train_cache.frames(vid)
    T = len(frames)
    length = T // 4
    centres = [i * length + length // 2 for i in range(4)]
    item = clips[0]
    assert item.shape == (4, 3, 32, 32) and item.dtype == torch.float32
    np.testing.assert_allclose(item.numpy(), expected_frames(frames, centres), atol=1e-5)
    clips.set_epoch(5)
    assert torch.equal(clips[0], item)  # no randomness at evaluation


def test_train_jitter_depends_on_seed_epoch_and_index_only(train_cache):
    clips = VideoClips(train_cache, train_cache.names, 4, MEAN, STD, train=True, seed=1)
    twin = VideoClips(train_cache, train_cache.names, 4, MEAN, STD, train=True, seed=1)
    draws = {}
    for epoch in range(6):
        clips.set_epoch(epoch)
        twin.set_epoch(epoch)
        draws[epoch] = clips[2]
        assert torch.equal(draws[epoch], twin[2])
    assert any(not torch.equal(draws[0], draws[e]) for e in range(1, 6))
    # Every drawn frame is the cached frame of some index inside its own segment: [i, i + 1) * T / 4.
    frames = train_cache.frames(train_cache.names[2])
    T = len(frames)
    assert T % 4, "a video whose length is no multiple of 4 checks the fractional segment bounds"
    for item in draws.values():
        for seg in range(4):
            inside = [i for i in range(T) if i + 1 > seg * T / 4 and i < (seg + 1) * T / 4]
            candidates = expected_frames(frames, inside)
            assert min(np.abs(c - item[seg].numpy()).max() for c in candidates) < 1e-5


def test_query_tokens_follow_record_order(tiny_bench):
    clip = load_clip(ClipConfig(model=str(REPO / "configs" / "propy-tiny.json"), pretrained=""))
    records = load_annotations(tiny_bench / "synthetic" / "annotations" / "val.jsonl")[:3]
    tokens = query_tokens(records, clip.tokenizer, 8)
    assert tokens.shape == (3, 8) and tokens.dtype == torch.long
    single = query_tokens(records[1:2], clip.tokenizer, 8)
    assert torch.equal(tokens[1:2], single)
    sot = clip.tokenizer.sot_token_id
    assert torch.all(tokens[:, 0] == sot)
