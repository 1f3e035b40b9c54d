"""Group Pose losses: sigmoid focal classification, visible-keypoint L1 and OKS.

Group Pose (Liu et al., "Group Pose: A Simple Baseline for End-to-End Multi-person Pose
Estimation", ICCV 2023, arXiv 2308.07313) supervises only classes and keypoints (no human box).
Each loss is a sum over matched instances (or, for the classification, over every query) divided by
the number of ground-truth instances in the batch, as in the paper's criterion; the weights of the
paper are 2 (class), 10 (L1) and 4 (OKS). Keypoints are in coordinates normalised by the image
size, areas by the image area, so OKS is scale free.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from plugins.registry import MODELS

# Per-keypoint OKS constants (COCO's sigmas); the COCO and CrowdPose evaluations use the same.
COCO_SIGMAS = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089)
CROWDPOSE_SIGMAS = (.079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089,
                    .079, .079)


def keypoint_sigmas(num_keypoints: int, sigmas: Optional[Sequence[float]] = None) -> torch.Tensor:
    """The OKS constants: ``sigmas`` when given, else COCO's (17) or CrowdPose's (14)."""
    if sigmas is None:
        presets = {17: COCO_SIGMAS, 14: CROWDPOSE_SIGMAS}
        if num_keypoints not in presets:
            raise ValueError(f'num_keypoints={num_keypoints} has no preset OKS sigmas '
                             f'(presets: {sorted(presets)}); pass sigmas=[...] explicitly')
        sigmas = presets[num_keypoints]
    if len(sigmas) != num_keypoints:
        raise ValueError(f'{len(sigmas)} sigmas given for num_keypoints={num_keypoints}')
    return torch.as_tensor(sigmas, dtype=torch.float32)


def pairwise_oks(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, area: torch.Tensor,
                 sigmas: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """OKS of every prediction against every ground truth.

    ``OKS = sum_k v_k exp(-d_k^2 / (2 s^2 k_k^2)) / sum_k v_k`` with ``s^2`` the area and
    ``k_k = 2 sigma_k`` (the COCO definition).

    Args:
        pred: (P, K, 2) keypoints. gt: (G, K, 2). visible: (G, K) in {0, 1}. area: (G,).
        sigmas: (K,).
    Returns:
        (P, G) OKS in [0, 1].
    """
    variances = (2 * sigmas.to(pred)) ** 2                                   # (K,)
    sq_dist = ((pred[:, None] - gt[None]) ** 2).sum(-1)                      # (P, G, K)
    scaled = sq_dist / (2 * area.to(pred)[None, :, None].clamp(min=eps) * variances)
    visible = visible.to(pred)
    return (torch.exp(-scaled) * visible[None]).sum(-1) / (visible.sum(-1)[None] + eps)


def paired_oks(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, area: torch.Tensor,
               sigmas: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """OKS of matched pairs: (M, K, 2) predictions against (M, K, 2) ground truths -> (M,)."""
    variances = (2 * sigmas.to(pred)) ** 2
    sq_dist = ((pred - gt) ** 2).sum(-1)                                      # (M, K)
    scaled = sq_dist / (2 * area.to(pred)[:, None].clamp(min=eps) * variances)
    visible = visible.to(pred)
    return (torch.exp(-scaled) * visible).sum(-1) / (visible.sum(-1) + eps)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Element-wise sigmoid focal loss (Lin et al., RetinaNet), ``targets`` in {0, 1}."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


@MODELS.register_module()
class GroupPoseFocalLoss(BaseModule):
    """Sigmoid focal loss over all queries and classes, summed and divided by ``avg_factor``.

    Args:
        alpha, gamma: focal parameters (paper: 0.25, 2).
        loss_weight: the paper's weight is 2.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, loss_weight: float = 2.0):
        super().__init__()
        self.alpha, self.gamma, self.loss_weight = alpha, gamma, loss_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                avg_factor: float = 1.0) -> torch.Tensor:
        loss = sigmoid_focal_loss(logits, targets.to(logits), self.alpha, self.gamma)
        return self.loss_weight * loss.sum() / avg_factor


@MODELS.register_module()
class VisibleKeypointL1Loss(BaseModule):
    """L1 distance of the labelled keypoints (x and y), summed and divided by ``avg_factor``.

    Unlabelled keypoints (``visible == 0``) contribute nothing. The paper's weight is 10.
    """

    def __init__(self, loss_weight: float = 10.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor,
                avg_factor: float = 1.0) -> torch.Tensor:
        loss = (pred - gt).abs() * visible.to(pred)[..., None]
        return self.loss_weight * loss.sum() / avg_factor


@MODELS.register_module()
class KeypointOKSLoss(BaseModule):
    """OKS loss of matched instances: ``1 - OKS`` (``mode='linear'``, the paper's choice) or
    ``-log OKS`` (``mode='log'``), OKS clamped at ``eps``; summed and divided by ``avg_factor``.

    Args:
        num_keypoints: picks COCO (17) or CrowdPose (14) sigmas unless ``sigmas`` is given.
        loss_weight: the paper's weight is 4.
    """

    def __init__(self, num_keypoints: int = 17, sigmas: Optional[Sequence[float]] = None,
                 mode: str = 'linear', eps: float = 1e-6, loss_weight: float = 4.0):
        super().__init__()
        if mode not in ('linear', 'log'):
            raise ValueError(f"mode must be 'linear' or 'log', got {mode!r}")
        self.register_buffer('sigmas', keypoint_sigmas(num_keypoints, sigmas), persistent=False)
        self.mode, self.eps, self.loss_weight = mode, eps, loss_weight

    def forward(self, pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor,
                area: torch.Tensor, avg_factor: float = 1.0) -> torch.Tensor:
        oks = paired_oks(pred, gt, visible, area, self.sigmas).clamp(min=self.eps)
        loss = 1 - oks if self.mode == 'linear' else -oks.log()
        return self.loss_weight * loss.sum() / avg_factor
