"""One-to-one matching of Group Pose predictions to people (Hungarian algorithm).

The cost of assigning query ``q`` to person ``g`` is, as in the paper's matcher,
``w_cls * C_cls + w_L1 * C_L1 + w_oks * C_oks`` with the focal-style class cost
``alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p))``, the L1 distance summed over the
person's labelled keypoints, and ``1 - OKS``. Paper weights: 2, 10, 4.
"""
from typing import Optional, Sequence, Tuple

import torch
from scipy.optimize import linear_sum_assignment

from plugins.registry import MODELS
from .losses import keypoint_sigmas, pairwise_oks


@MODELS.register_module()
class GroupPoseMatcher:
    """Hungarian matcher with class, keypoint-L1 and OKS costs.

    Args:
        cost_class, cost_keypoint, cost_oks: the cost weights (paper: 2, 10, 4).
        alpha, gamma: focal parameters of the class cost.
        num_keypoints / sigmas: OKS constants (COCO for 17, CrowdPose for 14 by default).
    """

    def __init__(self, cost_class: float = 2.0, cost_keypoint: float = 10.0,
                 cost_oks: float = 4.0, alpha: float = 0.25, gamma: float = 2.0,
                 num_keypoints: int = 17, sigmas: Optional[Sequence[float]] = None):
        self.cost_class, self.cost_keypoint, self.cost_oks = cost_class, cost_keypoint, cost_oks
        self.alpha, self.gamma = alpha, gamma
        self.sigmas = keypoint_sigmas(num_keypoints, sigmas)

    @torch.no_grad()
    def cost(self, logits: torch.Tensor, keypoints: torch.Tensor, gt_labels: torch.Tensor,
             gt_keypoints: torch.Tensor, gt_visible: torch.Tensor,
             gt_areas: torch.Tensor) -> torch.Tensor:
        """(Q, G) cost matrix of one image.

        Args:
            logits: (Q, C) class logits. keypoints: (Q, K, 2) normalised predictions.
            gt_labels: (G,) class indices. gt_keypoints: (G, K, 2). gt_visible: (G, K).
            gt_areas: (G,) normalised areas.
        """
        prob = logits.sigmoid()[:, gt_labels]                                  # (Q, G)
        pos = self.alpha * (1 - prob) ** self.gamma * -(prob + 1e-8).log()
        neg = (1 - self.alpha) * prob ** self.gamma * -(1 - prob + 1e-8).log()
        cost_class = pos - neg
        visible = gt_visible.to(keypoints)
        cost_l1 = ((keypoints[:, None] - gt_keypoints[None]).abs() *
                   visible[None, :, :, None]).sum((-1, -2))                    # (Q, G)
        oks = pairwise_oks(keypoints, gt_keypoints, visible, gt_areas, self.sigmas)
        cost_oks = 1 - oks.clamp(min=1e-6)
        return (self.cost_class * cost_class + self.cost_keypoint * cost_l1 +
                self.cost_oks * cost_oks)

    @torch.no_grad()
    def __call__(self, logits, keypoints, gt_labels, gt_keypoints, gt_visible,
                 gt_areas) -> Tuple[torch.Tensor, torch.Tensor]:
        """Matched ``(query indices, person indices)``, each (min(Q, G),), as long tensors."""
        device = logits.device
        if gt_labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty
        cost = self.cost(logits.float(), keypoints.float(), gt_labels, gt_keypoints.float(),
                         gt_visible, gt_areas.float())
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        return (torch.as_tensor(rows, dtype=torch.long, device=device),
                torch.as_tensor(cols, dtype=torch.long, device=device))
