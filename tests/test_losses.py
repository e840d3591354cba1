import math

import pytest
import torch

from propy.train.losses import symmetric_infonce


def lse(values):
    return math.log(sum(math.exp(v) for v in values))


def test_hand_worked_matrix():
    # 3 queries, 2 videos: queries 0 and 1 belong to video 0, query 2 to video 1.
    rows = [[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]]
    owner = [0, 0, 1]
    t2v = sum(lse(row) - row[v] for row, v in zip(rows, owner)) / 3
    col0 = [r[0] for r in rows]
    col1 = [r[1] for r in rows]
    v2t = ((lse(col0) - lse(col0[:2])) + (lse(col1) - col1[2])) / 2
    expected = (t2v + v2t) / 2
    got = symmetric_infonce(torch.tensor(rows), torch.tensor(owner))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_one_query_per_video_is_symmetric_clip_loss():
    # With one query per video, v2t is the cross-entropy of the transposed matrix.
    logits = torch.tensor([[3.0, -1.0, 0.5], [0.2, 1.0, 2.0], [1.0, 1.5, 0.0]])
    owner = torch.arange(3)
    t2v = sum(lse(logits[i].tolist()) - logits[i, i].item() for i in range(3)) / 3
    v2t = sum(lse(logits[:, j].tolist()) - logits[j, j].item() for j in range(3)) / 3
    assert symmetric_infonce(logits, owner).item() == pytest.approx((t2v + v2t) / 2, rel=1e-6)


def test_loss_falls_as_positives_separate_and_gradient_flows():
    owner = torch.tensor([0, 1, 1])
    weak = torch.zeros(3, 2)
    strong = torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 10.0]])
    assert symmetric_infonce(strong, owner) < 1e-3 < symmetric_infonce(weak, owner)
    # Uniform logits: t2v = log 2, v2t = log 3 - log(#own queries), averaged over videos.
    expected = (math.log(2) + (math.log(3) + math.log(3 / 2)) / 2) / 2
    assert symmetric_infonce(weak, owner).item() == pytest.approx(expected, rel=1e-6)
    logits = torch.zeros(3, 2, requires_grad=True)
    symmetric_infonce(logits, owner).backward()
    assert torch.all(logits.grad[torch.arange(3), owner] < 0)  # raising a positive lowers the loss


def test_rejects_bad_shapes_and_videos_without_queries():
    with pytest.raises(ValueError, match="Nq, Nv"):
        symmetric_infonce(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least one query"):
        symmetric_infonce(torch.zeros(2, 3), torch.tensor([0, 1]))
