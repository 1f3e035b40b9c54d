"""Point cloud semantic segmentation on mmengine: data preprocessor, seg head, loss, segmentor.

``PointCloudSegmentor(backbone=dict(type='ConDaFormer', arch='scannet', in_channels=9),
head=dict(type='PointSegHead', num_classes=20))`` trains with mmengine's Runner
(``tools/train.py``). Inputs are variable-size clouds, concatenated with a batch index (offsets),
voxelised by the data pipeline (one point per voxel); predictions are mapped back to every
original point (``inverse``) for evaluation.
"""
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import BaseDataElement

from plugins.registry import MODELS
from plugins.utils.checkpoint import PretrainedFromRelease
from .condaformer import unique_voxels
from .sparse import PointBatchNorm1d


@MODELS.register_module()
class PointCloudDataPreprocessor(BaseDataPreprocessor):
    """Concatenate variable-size clouds: ``coord``, ``grid_coord``, ``feat``, ``batch``, ``offset``.

    Each input is a dict of ``coord (Ni, 3)``, ``grid_coord (Ni, 3)`` and ``feat (Ni, C)``
    (and ``view (Ni,)`` after ``PointTestTimeAug``); the output ``inputs`` holds their
    concatenation, ``batch (N,)`` (cloud index of each point) and ``offset (B,)`` (cumulative
    point counts, the PointTransformerV2 convention).
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        clouds = data['inputs']
        if isinstance(clouds, dict):
            if torch.is_tensor(clouds['coord']):  # already concatenated
                return dict(inputs=clouds, data_samples=data.get('data_samples'))
            # mmengine's pseudo_collate turns a list of dicts into a dict of lists
            clouds = [dict(zip(clouds, values)) for values in zip(*clouds.values())]
        sizes = [len(c['coord']) for c in clouds]
        device = clouds[0]['coord'].device
        inputs = dict(
            coord=torch.cat([c['coord'].float() for c in clouds]),
            grid_coord=torch.cat([c['grid_coord'].long() for c in clouds]),
            feat=torch.cat([c['feat'].float() for c in clouds]),
            batch=torch.repeat_interleave(torch.arange(len(clouds), device=device),
                                          torch.tensor(sizes, device=device)),
            offset=torch.tensor(sizes, device=device).cumsum(0))
        if 'view' in clouds[0]:
            inputs['view'] = torch.cat([c['view'].long() for c in clouds])
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


@MODELS.register_module()
class PointSegHead(nn.Module):
    """Per-point classifier: linear, BN, ReLU, linear (the official ``final``)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, in_channels)
        self.norm = PointBatchNorm1d(in_channels)
        self.act = nn.ReLU(inplace=True)
        self.cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.act(self.norm(self.fc(x))))


@MODELS.register_module()
class PointCrossEntropyLoss(nn.Module):
    """Cross-entropy over points, ignoring ``ignore_index`` (255 in ScanNet / S3DIS layouts)."""

    def __init__(self, ignore_index: int = 255, loss_weight: float = 1.0,
                 class_weight: Optional[List[float]] = None, label_smoothing: float = 0.0):
        super().__init__()
        self.ignore_index, self.loss_weight = ignore_index, loss_weight
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weight is None else logits.new_tensor(self.class_weight)
        if (labels != self.ignore_index).sum() == 0:
            return logits.sum() * 0.0
        return self.loss_weight * F.cross_entropy(logits.float(), labels.long(), weight=weight,
                                                  ignore_index=self.ignore_index,
                                                  label_smoothing=self.label_smoothing)


@MODELS.register_module()
class PointCloudSegmentor(PretrainedFromRelease, BaseModel):
    """Semantic segmentation of point clouds: a sparse backbone, a per-point head, a loss.

    Args:
        backbone: e.g. ``dict(type='ConDaFormer', arch='scannet', in_channels=9)``; called as
            ``backbone(coord, grid_coord, feat, batch)`` -> ``(N, C)``.
        head: ``dict(type='PointSegHead', num_classes=K)`` (``in_channels`` defaults to the
            backbone's ``out_channels``).
        loss: default ``PointCrossEntropyLoss(ignore_index=255)``.
        test_cfg: ``views_per_batch``: how many views of ``PointTestTimeAug`` run in one forward
            pass (the official ``batch_size_test``: 4 for ScanNet, 6 for S3DIS; memory only).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads the official ConDaFormer
            checkpoints (key converter ``plugins.utils.convert_condaformer``) or the toolkit's own;
            ``strict=False`` loads what fits (e.g. another number of classes), ``copy`` picks
            the copy of the weights, ``prefix`` the keys under it.

    Points of one cloud that share a voxel (no grid sampling in the pipeline, duplicates) are
    merged (mean coordinates and features) before the backbone and get the voxel's prediction.
    """
    converter = 'condaformer'

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 loss: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or
                         dict(type='PointCloudDataPreprocessor'), init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        head = dict(head)
        head.setdefault('in_channels', self.backbone.out_channels)
        self.head = MODELS.build(head)
        self.loss_fn = MODELS.build(loss or dict(type='PointCrossEntropyLoss'))
        self.train_cfg, self.test_cfg = dict(train_cfg or {}), dict(test_cfg or {})

    def init_weights(self) -> None:
        if not self.init_from_pretrained_cfg():
            super().init_weights()

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def logits(self, inputs: dict) -> torch.Tensor:
        """``(N, num_classes)`` logits of every input point."""
        coord, grid, feat, batch = (inputs['coord'], inputs['grid_coord'], inputs['feat'],
                                    inputs['batch'])
        merged = unique_voxels(grid, batch)
        if merged is None:
            return self.head(self.backbone(coord, grid, feat, batch))
        m, inverse = merged
        counts = coord.new_zeros(m, 1).index_add_(0, inverse, coord.new_ones(len(coord), 1))

        def mean(t):
            return t.new_zeros(m, t.shape[1]).index_add_(0, inverse, t) / counts

        first = torch.full((m,), len(coord), dtype=torch.long, device=coord.device)
        first = first.scatter_reduce(0, inverse, torch.arange(len(coord), device=coord.device),
                                     'amin')
        out = self.backbone(mean(coord), grid[first], mean(feat.float()), batch[first])
        return self.head(out)[inverse]

    @staticmethod
    def _labels(data_samples, device) -> torch.Tensor:
        return torch.cat([s.gt_labels.to(device) for s in data_samples]).long()

    def loss(self, inputs: dict, data_samples) -> Dict[str, torch.Tensor]:
        logits = self.logits(inputs)
        return dict(loss_ce=self.loss_fn(logits, self._labels(data_samples, logits.device)))

    def predict(self, inputs: dict, data_samples=None) -> List[BaseDataElement]:
        """Data samples with ``pred_labels`` for every evaluation point.

        With an ``inverse`` field (grid sampling in test mode), each original point takes the
        prediction of its voxel's representative point. With views (``PointTestTimeAug``), the
        softmax of every view is added to the points it votes for and the arg-max is predicted.
        """
        if 'view' in inputs:
            return self._predict_views(inputs, data_samples)
        logits = self.logits(inputs)
        sizes = torch.bincount(inputs['batch'], minlength=len(inputs['offset'])).tolist()
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in sizes]
        for sample, cloud_logits in zip(data_samples, logits.split(sizes)):
            if 'inverse' in sample:
                cloud_logits = cloud_logits[sample.inverse.to(cloud_logits.device).long()]
            sample.pred_labels = cloud_logits.argmax(1).cpu()
        return data_samples

    def _predict_views(self, inputs: dict, data_samples) -> List[BaseDataElement]:
        """Official ``SegmentationTest``: per cloud, its views ``views_per_batch`` at a time,
        ``score[vote_point] += softmax(logits)[vote_row]``, then the arg-max per point."""
        per_batch = int(self.test_cfg.get('views_per_batch', 4))
        for b, sample in enumerate(data_samples):
            rows = torch.nonzero(inputs['batch'] == b).flatten()
            view = inputs['view'][rows]
            vote_point = sample.vote_point.to(rows.device).long()
            vote_row = sample.vote_row.to(rows.device).long()
            score = None
            for first in range(int(view.min()), int(view.max()) + 1, per_batch):
                chunk = torch.nonzero((view >= first) & (view < first + per_batch)).flatten()
                if not len(chunk):
                    continue
                part = {k: inputs[k][rows[chunk]] for k in ('coord', 'grid_coord', 'feat')}
                part['batch'] = view[chunk] - first
                prob = self.logits(part).float().softmax(1)
                if score is None:
                    num_points = int(vote_point.max()) + 1 if len(vote_point) else 0
                    score = prob.new_zeros(num_points, prob.shape[1])
                lo, hi = int(chunk.min()), int(chunk.max()) + 1   # a view's rows are contiguous
                votes = (vote_row >= lo) & (vote_row < hi)
                local = torch.full((hi - lo,), -1, dtype=torch.long, device=prob.device)
                local[chunk - lo] = torch.arange(len(chunk), device=prob.device)
                score.index_add_(0, vote_point[votes], prob[local[vote_row[votes] - lo]])
            sample.pred_labels = score.argmax(1).cpu()
        return data_samples
