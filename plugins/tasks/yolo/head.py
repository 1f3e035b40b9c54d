"""The YOLOv8 decoupled detection head (Ultralytics ``Detect``, the head of Mamba-YOLO's detector),
as an mmdet 3.x dense head built from mmdet's parts.

Per level (strides 8, 16, 32), two branches of two 3x3 ``conv-BN-SiLU`` and a 1x1 conv: a box
branch of ``max(16, C3 / 4, 4 * reg_max)`` channels predicting, for each of the four sides, a
distribution over ``reg_max = 16`` distances (0..15 strides; the box side is its expectation:
DFL's integral, "Generalized Focal Loss", Li et al., arXiv 2006.04388, Sec. 3.3), and a class
branch of ``max(C3, min(num_classes, 100))`` channels predicting independent class logits.
Anchor-free: one prediction per map position, at the cell centre ``(j + 0.5) * stride``.

Training (Ultralytics ``v8DetectionLoss``): task-aligned assignment (top-k 10, alpha 0.5, beta 6;
:class:`~plugins.tasks.yolo.assigner.YOLOTaskAlignedAssigner`, or mmdet's ``TaskAlignedAssigner``
by config) on the sigmoid scores and decoded boxes; the class target of a positive is its metric
normalised per gt (``t / max_gt(t) * max_gt(IoU)``, TOOD's Eq. 7-8), 0 elsewhere. Losses, each
divided by the sum of the class targets over the batch: BCE on all class logits (weight 0.5);
CIoU of positives weighted by their target (7.5; mmdet's ``CIoULoss``); DFL of the four sides
(1.5 averaged over the sides; mmdet's ``DistributionFocalLoss``, targets clamped to 14.99). As
Ultralytics, the losses are multiplied by the images of the whole batch (``batch size x world
size``): its learning rate 0.01 was set for that scale.

Inference: sigmoid scores, multi-label NMS (mmdet's ``multiclass_nms``) with the test config
(Ultralytics' validation: score 0.001, IoU 0.7, at most 300 boxes, 30000 candidates).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.layers import multiclass_nms
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.structures.bbox import bbox2distance, distance2bbox
from mmengine.dist import get_world_size
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torch import Tensor

from ...backbones.layers import ConvNormAct
from ...backbones.mamba_yolo import YOLO_BN
from ...registry import MODELS


def _branch(in_channels: int, channels: int, out_channels: int, norm_cfg) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(in_channels, channels, 3, norm_cfg=norm_cfg),
                         ConvNormAct(channels, channels, 3, norm_cfg=norm_cfg),
                         nn.Conv2d(channels, out_channels, 1))


@MODELS.register_module()
class YOLOv8Head(BaseDenseHead):
    """YOLOv8's decoupled anchor-free head with DFL box regression (see the module docstring).

    Example (Mamba-YOLO-T on COCO)::

        bbox_head=dict(type='YOLOv8Head', num_classes=80, in_channels=[64, 128, 256],
                       train_cfg=dict(assigner=dict(type='YOLOTaskAlignedAssigner', topk=10),
                                      alpha=0.5, beta=6.0),
                       test_cfg=dict(nms_pre=30000, score_thr=0.001,
                                     nms=dict(type='nms', iou_threshold=0.7), max_per_img=300))

    Args:
        num_classes: object classes.
        in_channels: channels of the neck's maps, finest first.
        strides: their strides.
        reg_max: bins of each side's distance distribution (16: distances 0..15 strides).
        prior_image_size: the image size of the class-bias prior (``log(5 / nc / (size / s)^2)``:
            about five objects per image; 640 as Ultralytics).
        norm_cfg: BatchNorm of the convs (Ultralytics' eps 1e-3, momentum 0.03).
        loss_cls, loss_bbox, loss_dfl: mmdet losses with Ultralytics' gains 0.5, 7.5, 1.5.
        train_cfg: ``assigner`` and the metric's ``alpha``, ``beta``; test_cfg: ``nms_pre``,
            ``score_thr``, ``nms``, ``max_per_img``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 16,
                 prior_image_size: int = 640,
                 norm_cfg=YOLO_BN,
                 loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                               loss_weight=0.5),
                 loss_bbox=dict(type='CIoULoss', eps=1e-7, reduction='mean', loss_weight=7.5),
                 loss_dfl=dict(type='DistributionFocalLoss', reduction='mean',
                               loss_weight=1.5 / 4),
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(strides):
            raise ValueError(f'YOLOv8Head: {len(in_channels)} in_channels {list(in_channels)} '
                             f'but {len(strides)} strides {list(strides)}: one per level')
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.strides = list(strides)
        self.reg_max = reg_max
        self.prior_image_size = prior_image_size
        box_channels = max(16, in_channels[0] // 4, reg_max * 4)
        cls_channels = max(in_channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList(
            _branch(c, box_channels, 4 * reg_max, norm_cfg) for c in in_channels)
        self.cls_branches = nn.ModuleList(
            _branch(c, cls_channels, num_classes, norm_cfg) for c in in_channels)
        self.register_buffer('bins', torch.arange(reg_max, dtype=torch.float32),
                             persistent=False)
        self.prior_generator = MlvlPointGenerator(strides, offset=0.5)
        with DefaultScope.overwrite_default_scope('mmdet'):  # whatever scope the caller set
            self.loss_cls = MMDET_MODELS.build(loss_cls)
            self.loss_bbox = MMDET_MODELS.build(loss_bbox)
            self.loss_dfl = MMDET_MODELS.build(loss_dfl)
            self.assigner = MMDET_TASK_UTILS.build(train_cfg['assigner']) if train_cfg else None
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        if train_cfg:
            self.alpha = train_cfg.get('alpha', 0.5)
            self.beta = train_cfg.get('beta', 6.0)

    def init_weights(self) -> None:
        """Ultralytics' ``Detect.bias_init``: box logits 1.0, class logits the prior of about
        five objects per ``prior_image_size`` image spread over ``num_classes``."""
        super().init_weights()
        for box, cls, stride in zip(self.box_branches, self.cls_branches, self.strides):
            nn.init.constant_(box[-1].bias, 1.0)
            prior = 5 / self.num_classes / (self.prior_image_size / stride) ** 2
            nn.init.constant_(cls[-1].bias, math.log(prior))

    def forward(self, x: Tuple[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Class logits (B, num_classes, H, W) and side distributions (B, 4 * reg_max, H, W)
        per level."""
        if len(x) != len(self.strides):
            raise ValueError(f'YOLOv8Head: got {len(x)} maps for {len(self.strides)} strides')
        cls_scores = [branch(f) for branch, f in zip(self.cls_branches, x)]
        bbox_dists = [branch(f) for branch, f in zip(self.box_branches, x)]
        return cls_scores, bbox_dists

    # ---- shared by training and inference ------------------------------------------------------
    def _flatten(self, cls_scores, bbox_dists):
        """Priors (A, 2) points and (A, 1) strides; logits (B, A, C); distributions (B, A, 4, R);
        decoded boxes (B, A, 4) in input pixels."""
        sizes = [s.shape[-2:] for s in cls_scores]
        priors = torch.cat(self.prior_generator.grid_priors(
            sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device, with_stride=True))
        points, strides = priors[:, :2], priors[:, 2:3]
        batch = cls_scores[0].shape[0]
        logits = torch.cat([s.flatten(2) for s in cls_scores], dim=2).transpose(1, 2)
        dists = torch.cat([d.flatten(2) for d in bbox_dists], dim=2).transpose(1, 2)
        dists = dists.reshape(batch, -1, 4, self.reg_max)
        sides = dists.softmax(-1) @ self.bins.to(dists.dtype)                    # B A 4 (strides)
        boxes = distance2bbox(points, sides * strides)
        return points, strides, logits, dists, boxes

    # ---- training -------------------------------------------------------------------------------
    def _targets(self, points, logits, boxes, gt: InstanceData):
        """One image: class targets (A, C), box targets (A, 4), foreground mask (A,)."""
        pred = InstanceData(priors=torch.cat([points, points], dim=1), bboxes=boxes.detach(),
                            scores=logits.detach().sigmoid())
        result = self.assigner.assign(pred, gt, alpha=self.alpha, beta=self.beta)
        fg = result.gt_inds > 0
        gt_index = result.gt_inds[fg] - 1
        metrics, ious = result.assign_metrics[fg], result.max_overlaps[fg]
        # TOOD Eq. 7-8 / Ultralytics: per gt, metric / max metric * max IoU of its positives
        num_gts = gt.bboxes.shape[0]
        max_metric = metrics.new_zeros(num_gts).scatter_reduce(0, gt_index, metrics, 'amax')
        max_iou = ious.new_zeros(num_gts).scatter_reduce(0, gt_index, ious, 'amax')
        scores = logits.new_zeros(logits.shape)
        scores[fg, result.labels[fg]] = metrics * max_iou[gt_index] / (max_metric[gt_index] + 1e-9)
        targets = boxes.new_zeros(boxes.shape)
        targets[fg] = gt.bboxes[gt_index].to(boxes.dtype)
        return scores, targets, fg

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_dists: List[Tensor],
                     batch_gt_instances: List[InstanceData], batch_img_metas: List[dict],
                     batch_gt_instances_ignore=None) -> dict:
        points, strides, logits, dists, boxes = self._flatten(cls_scores, bbox_dists)
        targets = [self._targets(points, logits[i], boxes[i], gt)
                   for i, gt in enumerate(batch_gt_instances)]
        target_scores, target_boxes, fg = (torch.stack(t) for t in zip(*targets))
        avg = target_scores.sum().clamp(min=1)
        loss_cls = self.loss_cls(logits.reshape(-1, self.num_classes),
                                 target_scores.reshape(-1, self.num_classes), avg_factor=avg)
        if fg.any():
            weight = target_scores.sum(-1)[fg]
            loss_bbox = self.loss_bbox(boxes[fg], target_boxes[fg], weight=weight, avg_factor=avg)
            stride = strides.expand(fg.shape[0], -1, -1)[fg]
            sides = bbox2distance(points.expand(fg.shape[0], -1, -1)[fg] / stride,
                                  target_boxes[fg] / stride, self.reg_max - 1, eps=0.01)
            loss_dfl = self.loss_dfl(dists[fg].reshape(-1, self.reg_max), sides.reshape(-1),
                                     weight=weight[:, None].expand(-1, 4).reshape(-1),
                                     avg_factor=avg)
        else:
            loss_bbox = loss_dfl = dists.sum() * 0
        scale = len(batch_img_metas) * get_world_size()
        return dict(loss_cls=loss_cls * scale, loss_bbox=loss_bbox * scale,
                    loss_dfl=loss_dfl * scale)

    # ---- inference ------------------------------------------------------------------------------
    def predict_by_feat(self, cls_scores: List[Tensor], bbox_dists: List[Tensor],
                        batch_img_metas: Optional[List[dict]] = None, cfg=None,
                        rescale: bool = False, with_nms: bool = True) -> List[InstanceData]:
        cfg = self.test_cfg if cfg is None else cfg
        _, _, logits, _, boxes = self._flatten(cls_scores, bbox_dists)
        scores = logits.sigmoid()
        results = []
        for i, meta in enumerate(batch_img_metas):
            img_boxes, img_scores = boxes[i], scores[i]
            nms_pre = cfg.get('nms_pre', -1)
            if 0 < nms_pre < img_scores.shape[0]:
                keep = img_scores.amax(-1).topk(nms_pre).indices
                img_boxes, img_scores = img_boxes[keep], img_scores[keep]
            height, width = meta['img_shape'][:2]
            limit = img_boxes.new_tensor([width, height, width, height])
            img_boxes = torch.minimum(img_boxes.clamp(min=0), limit)
            if rescale:
                img_boxes = img_boxes / img_boxes.new_tensor(meta['scale_factor']).repeat(2)
            padded = torch.cat([img_scores, img_scores.new_zeros(img_scores.shape[0], 1)], 1)
            dets, labels = multiclass_nms(img_boxes, padded, cfg['score_thr'], cfg['nms'],
                                          cfg.get('max_per_img', -1))
            results.append(InstanceData(bboxes=dets[:, :4], scores=dets[:, 4], labels=labels))
        return results
