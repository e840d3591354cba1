import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_layout, write_tiny_params

from propy.config import load_params
from propy.evaluation.encode import (
    encode_queries,
    encode_split,
    encode_videos,
    load_split,
    retrieval,
)
from propy.evaluation.metrics import positive_ranks, prvr_metrics
from propy.model.backbone import load_clip
from propy.model.network import build_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tiny_bench, tmp_path_factory):
    params = load_params(write_tiny_params(tmp_path_factory.mktemp("enc") / "params.yaml"), "tiny")
    torch.manual_seed(0)
    backbone = load_clip(params.clip)
    model = build_model(params.model, backbone.model)
    return params, model, load_split(params, tiny_layout(tiny_bench), "val", backbone)


def test_split_positives_point_at_each_querys_own_video(setup):
    _, _, data = setup
    assert len(data.records) == len(data.positives) == len(data.tokens) >= len(data.vid_names) == 4
    assert [data.vid_names[p] for p in data.positives] == [r.vid_name for r in data.records]
    assert data.clips.train is False


def test_batching_does_not_change_embeddings_and_mode_is_restored(setup):
    _, model, data = setup
    model.train()
    one = encode_videos(model, data.clips, 1, CPU)
    three = encode_videos(model, data.clips, 3, CPU)
    assert one.shape == (4, model.num_events, 64)
    torch.testing.assert_close(one, three, rtol=1e-5, atol=1e-5)
    q1 = encode_queries(model, data.tokens, 1, CPU)
    q7 = encode_queries(model, data.tokens, 7, CPU)
    torch.testing.assert_close(q1, q7, rtol=1e-5, atol=1e-5)
    assert model.training and not q7.requires_grad


def test_ranks_match_a_direct_max_cosine(setup):
    params, model, data = setup
    encoded = encode_split(model, data, 2, 5, CPU)
    text = F.normalize(encoded.queries, dim=-1).double().numpy()
    events = F.normalize(encoded.videos, dim=-1).double().numpy()
    direct = np.einsum("td,ved->tve", text, events).max(-1)
    expected = positive_ranks(direct, data.positives)
    np.testing.assert_array_equal(encoded.ranks(batch=3), expected)  # chunked scoring
    metrics = retrieval(model, data, params, CPU)
    assert metrics == pytest.approx(prvr_metrics(expected, params.eval.ks), abs=1e-9)
    assert list(metrics) == ["R1", "R2", "R3", "R4", "SumR", "MedR", "MeanR"]
