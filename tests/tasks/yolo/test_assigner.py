"""YOLOTaskAlignedAssigner on hand-made cases: candidates inside the gt first, top-k, conflicts."""
import torch
from mmdet.models.task_modules.assigners import TaskAlignedAssigner
from mmengine.structures import InstanceData

from plugins.tasks.yolo.assigner import YOLOTaskAlignedAssigner


def predictions(points, boxes, scores):
    points = torch.tensor(points, dtype=torch.float32)
    return InstanceData(priors=torch.cat([points, points], 1),
                        bboxes=torch.tensor(boxes, dtype=torch.float32),
                        scores=torch.tensor(scores, dtype=torch.float32))


def gts(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                        labels=torch.tensor(labels))


GT = [0., 0., 20., 20.]


def test_a_prior_outside_the_gt_is_never_a_candidate():
    # prior 0 lies outside the gt but predicts it exactly with full confidence: the best metric
    pred = predictions([[30, 10], [5, 5], [15, 15]],
                       [GT, [2, 2, 18, 18], [4, 4, 16, 16]], [[1.0], [0.5], [0.5]])
    ours = YOLOTaskAlignedAssigner(topk=2).assign(pred, gts([GT], [0]), alpha=0.5, beta=6.0)
    assert ours.gt_inds.tolist() == [0, 1, 1]
    # mmdet's (TOOD's) assigner takes the top-k over all priors, then drops the outside one
    tood = TaskAlignedAssigner(topk=2).assign(pred, gts([GT], [0]), alpha=0.5, beta=6.0)
    assert tood.gt_inds.tolist() == [0, 1, 0]


def test_at_most_topk_positives_per_gt_the_best_aligned():
    points = [[2 + 4 * i, 10] for i in range(5)]                       # all inside the gt
    boxes = [[0, 0, 20, 20 - 2 * i] for i in range(5)]                 # worse boxes, same score
    pred = predictions(points, boxes, [[0.5]] * 5)
    result = YOLOTaskAlignedAssigner(topk=3).assign(pred, gts([GT], [0]), alpha=0.5, beta=6.0)
    assert result.gt_inds.tolist() == [1, 1, 1, 0, 0]


def test_metric_is_score_to_alpha_times_ciou_to_beta():
    pred = predictions([[10, 10]], [[0, 0, 20, 10]], [[0.25]])
    result = YOLOTaskAlignedAssigner().assign(pred, gts([GT], [0]), alpha=0.5, beta=6.0)
    # IoU 1/2; centres 5 apart, enclosing diagonal^2 800; mmdet's CIoU drops the aspect-ratio
    # term at IoU <= 0.5
    ciou = 0.5 - 25 / 800
    assert torch.allclose(result.max_overlaps, torch.tensor([ciou]), atol=1e-5)
    assert torch.allclose(result.assign_metrics, torch.tensor([0.25 ** 0.5 * ciou ** 6]),
                          rtol=1e-4)


def test_a_prior_inside_two_gts_goes_to_the_one_it_overlaps_most():
    other = [10., 0., 30., 20.]
    pred = predictions([[15, 10]], [[9, 0, 29, 20]], [[0.9, 0.9]])
    result = YOLOTaskAlignedAssigner().assign(pred, gts([GT, other], [0, 1]), alpha=0.5, beta=6.)
    assert result.gt_inds.tolist() == [2] and result.labels.tolist() == [1]


def test_no_gt_assigns_everything_to_background():
    pred = predictions([[5, 5]], [GT], [[0.9]])
    result = YOLOTaskAlignedAssigner().assign(pred, gts(torch.zeros(0, 4).tolist(), []))
    assert result.gt_inds.tolist() == [0] and result.labels.tolist() == [-1]


def test_an_exact_fit_has_overlap_one():
    pred = predictions([[10, 10]], [GT], [[0.25]])
    result = YOLOTaskAlignedAssigner().assign(pred, gts([GT], [0]), alpha=0.5, beta=6.0)
    assert result.max_overlaps.tolist() == [1.0]
    assert result.assign_metrics.tolist() == [0.5]
