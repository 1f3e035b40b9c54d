"""Matcher and losses on hand-made cases whose answers are known."""
import math

import pytest
import torch

from plugins.tasks.pose.losses import (GroupPoseFocalLoss, KeypointOKSLoss, VisibleKeypointL1Loss,
                                       keypoint_sigmas, pairwise_oks)
from plugins.tasks.pose.matcher import GroupPoseMatcher

K = 17


def person(x, y, spread=0.05):
    return torch.stack([torch.full((K,), x), torch.linspace(y - spread, y + spread, K)], -1)


def test_oks_is_one_for_exact_keypoints_and_one_half_at_the_known_distance():
    sigmas = keypoint_sigmas(K)
    gt = person(0.5, 0.5)[None]
    vis = torch.zeros(1, K)
    vis[0, 3] = 1                                  # one labelled keypoint
    area = torch.tensor([0.04])
    assert pairwise_oks(gt, gt, vis, area, sigmas).item() == pytest.approx(1.0, abs=1e-5)
    # exp(-d^2 / (2 area (2 sigma)^2)) = 1/2  <=>  d^2 = 2 area (2 sigma)^2 ln 2
    d = math.sqrt(2 * 0.04 * (2 * sigmas[3].item()) ** 2 * math.log(2))
    moved = gt.clone()
    moved[0, 3, 0] += d
    assert pairwise_oks(moved, gt, vis, area, sigmas).item() == pytest.approx(0.5, abs=1e-4)
    # unlabelled keypoints do not count
    moved[0, 5] += 0.3
    assert pairwise_oks(moved, gt, vis, area, sigmas).item() == pytest.approx(0.5, abs=1e-4)


def test_matcher_pairs_each_person_with_the_query_on_it():
    gts = torch.stack([person(0.2, 0.3), person(0.7, 0.6)])
    preds = torch.stack([person(0.71, 0.6), person(0.45, 0.45), person(0.2, 0.31)])
    logits = torch.zeros(3, 1)
    matcher = GroupPoseMatcher()
    rows, cols = matcher(logits, preds, torch.zeros(2, dtype=torch.long), gts,
                         torch.ones(2, K), torch.full((2,), 0.05))
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 2: 0}


def test_matcher_prefers_the_confident_query_when_keypoints_tie():
    gts = person(0.5, 0.5)[None]
    preds = torch.stack([person(0.5, 0.5), person(0.5, 0.5)])
    logits = torch.tensor([[-3.0], [3.0]])
    rows, cols = GroupPoseMatcher()(logits, preds, torch.zeros(1, dtype=torch.long), gts,
                                    torch.ones(1, K), torch.full((1,), 0.05))
    assert rows.tolist() == [1] and cols.tolist() == [0]


def test_matcher_with_nobody_matches_nothing():
    rows, cols = GroupPoseMatcher()(torch.zeros(5, 1), torch.rand(5, K, 2),
                                    torch.zeros(0, dtype=torch.long), torch.zeros(0, K, 2),
                                    torch.zeros(0, K), torch.zeros(0))
    assert rows.numel() == 0 and cols.numel() == 0


def test_focal_loss_value():
    # logit 0 (p = 1/2), positive: alpha (1 - p)^2 (-log p) = 0.25 * 0.25 * ln 2
    loss = GroupPoseFocalLoss(alpha=0.25, gamma=2.0, loss_weight=2.0)
    value = loss(torch.zeros(1, 1, 1), torch.ones(1, 1, 1), avg_factor=1.0)
    assert value.item() == pytest.approx(2.0 * 0.0625 * math.log(2), rel=1e-5)
    negative = loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), avg_factor=1.0)
    assert negative.item() == pytest.approx(2.0 * 0.75 * 0.25 * math.log(2), rel=1e-5)


def test_l1_loss_counts_only_labelled_keypoints_and_divides_by_people():
    gt = torch.zeros(2, K, 2)
    pred = torch.full((2, K, 2), 0.1)
    vis = torch.zeros(2, K)
    vis[0, :2] = 1                                 # two labelled keypoints, x and y each 0.1
    value = VisibleKeypointL1Loss(loss_weight=10.0)(pred, gt, vis, avg_factor=2.0)
    assert value.item() == pytest.approx(10.0 * 0.4 / 2.0, rel=1e-5)


def test_oks_loss_is_zero_when_exact_and_grows_with_distance():
    loss = KeypointOKSLoss(loss_weight=4.0)
    gt = person(0.5, 0.5)[None]
    vis, area = torch.ones(1, K), torch.tensor([0.05])
    assert loss(gt, gt, vis, area).item() == pytest.approx(0.0, abs=1e-5)
    near = loss(gt + 0.01, gt, vis, area).item()
    far = loss(gt + 0.05, gt, vis, area).item()
    assert 0 < near < far <= 4.0
    log_loss = KeypointOKSLoss(mode='log', loss_weight=1.0)
    oks = 1 - near / 4.0
    assert log_loss(gt + 0.01, gt, vis, area).item() == pytest.approx(-math.log(oks), rel=1e-4)


def test_sigmas_presets_and_errors():
    assert keypoint_sigmas(17)[0].item() == pytest.approx(0.026)
    assert len(keypoint_sigmas(14)) == 14
    with pytest.raises(ValueError, match='sigmas'):
        keypoint_sigmas(5)
