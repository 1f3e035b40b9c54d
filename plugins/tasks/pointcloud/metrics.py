"""Semantic segmentation metrics over the evaluation points of point clouds."""
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from plugins.registry import METRICS


@METRICS.register_module()
class PointCloudIoUMetric(BaseMetric):
    """mIoU, mean class accuracy and overall accuracy, accumulated over all points of all clouds.

    Points labelled ``ignore_index`` are left out. Classes absent from both the labels and the
    predictions of the whole set do not count in the means (as the official evaluation).
    Returns ``pcd/mIoU``, ``pcd/mAcc``, ``pcd/OA`` (fractions in [0, 1]) and logs per-class IoU.
    """
    default_prefix = 'pcd'

    def __init__(self, num_classes: Optional[int] = None, ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def _num_classes(self) -> int:
        if self.num_classes is not None:
            return self.num_classes
        if self.dataset_meta and 'classes' in self.dataset_meta:
            return len(self.dataset_meta['classes'])
        raise ValueError('PointCloudIoUMetric needs num_classes or dataset classes')

    def process(self, data_batch, data_samples: Sequence) -> None:
        k = self._num_classes()
        for sample in data_samples:
            pred = sample['pred_labels'] if isinstance(sample, dict) else sample.pred_labels
            gt = sample['gt_labels'] if isinstance(sample, dict) else sample.gt_labels
            pred, gt = torch.as_tensor(pred).long().cpu(), torch.as_tensor(gt).long().cpu()
            if pred.shape != gt.shape:
                raise ValueError(f'{pred.numel()} predictions for {gt.numel()} labelled points')
            keep = gt != self.ignore_index
            confusion = torch.bincount(gt[keep] * k + pred[keep].clamp(0, k - 1),
                                       minlength=k * k).view(k, k)
            self.results.append(confusion.numpy())

    def compute_metrics(self, results: list) -> dict:
        confusion = np.sum(results, axis=0).astype(np.float64)
        tp = np.diag(confusion)
        gt_count, pred_count = confusion.sum(1), confusion.sum(0)
        union = gt_count + pred_count - tp
        present = union > 0
        iou = np.where(present, tp / np.maximum(union, 1), np.nan)
        acc = np.where(gt_count > 0, tp / np.maximum(gt_count, 1), np.nan)
        metrics = OrderedDict(mIoU=float(np.nanmean(iou)) if present.any() else 0.0,
                              mAcc=float(np.nanmean(acc)) if (gt_count > 0).any() else 0.0,
                              OA=float(tp.sum() / max(confusion.sum(), 1)))
        names = (self.dataset_meta or {}).get('classes') or [str(i) for i in range(len(tp))]
        rows = [f'{n:<16} IoU {i:.4f}  acc {a:.4f}' for n, i, a in zip(names, iou, acc)]
        print_log('per-class results:\n' + '\n'.join(rows), logger='current')
        return metrics
