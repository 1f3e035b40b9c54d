"""Task-aligned assignment as YOLOv8 (Ultralytics ``TaskAlignedAssigner``) does it.

TOOD ("TOOD: Task-aligned One-stage Object Detection", Feng et al., arXiv 2108.07755, Sec. 3.2)
scores every prediction against every ground truth with ``t = s^alpha * u^beta`` (``s``: the
predicted probability of the gt's class, ``u``: the IoU of the predicted box with the gt box) and
takes the top-k per gt as positives. YOLOv8 (top-k 10, alpha 0.5, beta 6) differs from mmdet's
``TaskAlignedAssigner`` (TOOD's) in two ways, both kept here:

- candidates first: only priors whose centre lies inside the gt box get a metric (the others get
  0), then the top-k of those are taken; mmdet takes the top-k over all priors and drops those
  outside afterwards, which leaves a gt with few or no positives early in training, when the
  predicted boxes are still random (TOOD starts with ATSS for that reason);
- ``u`` is the CIoU, clamped at 0 (here mmdet's ``ciou_loss`` formula, as the head's box loss:
  its aspect-ratio term counts only where IoU > 0.5, as in the CIoU journal version; Ultralytics
  counts it everywhere).

A prior positive for several gts goes to the one it overlaps most. The result is mmdet's
``AssignResult`` with ``assign_metrics`` (the metric towards the assigned gt), as mmdet's
assigner returns it, so a head works with either.
"""
from typing import Optional

import torch
from mmdet.models.losses.iou_loss import ciou_loss
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmengine.structures import InstanceData

from ...registry import TASK_UTILS


def aligned_ciou(boxes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CIoU of each box with its target, as mmdet's ``ciou_loss`` computes it. An exact fit has
    CIoU 1 (there ``ciou_loss``'s aspect weight ``v / (1 - IoU + v)`` is 0 / 0)."""
    return torch.nan_to_num(1 - ciou_loss(boxes, targets, reduction='none'), nan=1.0)


@TASK_UTILS.register_module()
class YOLOTaskAlignedAssigner(BaseAssigner):
    """YOLOv8's task-aligned assigner (see the module docstring).

    Args:
        topk: positives per gt at most (10 in YOLOv8).
        eps: a prior is inside a gt when all four distances to its sides exceed ``eps``.
    """

    def __init__(self, topk: int = 10, eps: float = 1e-9):
        if topk < 1:
            raise ValueError(f'YOLOTaskAlignedAssigner: topk must be >= 1, got {topk}')
        self.topk = topk
        self.eps = eps

    @torch.no_grad()
    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None, alpha: float = 0.5,
               beta: float = 6.0) -> AssignResult:
        """Assign each prior a gt (1-based index) or background (0).

        Args:
            pred_instances: ``priors`` (A, 4) boxes whose centres are the prior points (points
                as ``(x, y, x, y)``), ``bboxes`` (A, 4) decoded predictions, ``scores`` (A, C)
                class probabilities, all in input pixels.
            gt_instances: ``bboxes`` (G, 4), ``labels`` (G,).
            alpha, beta: exponents of the alignment metric (0.5, 6.0 in YOLOv8).
        """
        priors, boxes, scores = (pred_instances.priors[:, :4], pred_instances.bboxes,
                                 pred_instances.scores)
        gt_bboxes, gt_labels = gt_instances.bboxes, gt_instances.labels
        num_gts, num_priors = gt_bboxes.size(0), priors.size(0)
        assigned = priors.new_zeros(num_priors, dtype=torch.long)
        overlap_of_assigned = priors.new_zeros(num_priors)
        metric_of_assigned = priors.new_zeros(num_priors)
        labels = priors.new_full((num_priors, ), -1, dtype=torch.long)
        if num_gts == 0 or num_priors == 0:
            result = AssignResult(num_gts, assigned, overlap_of_assigned, labels=labels)
            result.assign_metrics = metric_of_assigned
            return result

        centres = (priors[:, :2] + priors[:, 2:]) / 2
        sides = torch.cat([centres[None] - gt_bboxes[:, None, :2],
                           gt_bboxes[:, None, 2:] - centres[None]], dim=-1)     # G A 4
        inside = sides.amin(-1) > self.eps                                      # G A
        gi, ai = inside.nonzero(as_tuple=True)
        overlaps = priors.new_zeros(num_gts, num_priors)
        overlaps[gi, ai] = aligned_ciou(boxes[ai], gt_bboxes[gi]).clamp(0)
        class_scores = scores[:, gt_labels].t() * inside                        # G A
        metrics = class_scores.pow(alpha) * overlaps.pow(beta)

        top = metrics.topk(min(self.topk, num_priors), dim=1).indices
        positive = torch.zeros_like(inside).scatter_(1, top, True) & inside     # G A
        count = positive.sum(0)
        gt_of_prior = positive.float().argmax(0)
        several = count > 1
        gt_of_prior[several] = overlaps[:, several].argmax(0)
        fg = count > 0

        prior_idx = fg.nonzero(as_tuple=True)[0]
        gt_idx = gt_of_prior[prior_idx]
        assigned[prior_idx] = gt_idx + 1
        labels[prior_idx] = gt_labels[gt_idx]
        overlap_of_assigned[prior_idx] = overlaps[gt_idx, prior_idx]
        metric_of_assigned[prior_idx] = metrics[gt_idx, prior_idx]
        result = AssignResult(num_gts, assigned, overlap_of_assigned, labels=labels)
        result.assign_metrics = metric_of_assigned
        return result
