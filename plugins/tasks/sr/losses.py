"""Pixel losses of SR training (L1 is what CATANet and DLGSANet train with)."""
import torch
import torch.nn as nn

from plugins.registry import MODELS


class _PixelLoss(nn.Module):

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.loss_weight = loss_weight
        self.reduction = reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.elementwise(pred, target)
        loss = loss.mean() if self.reduction == 'mean' else loss.sum()
        return self.loss_weight * loss


@MODELS.register_module()
class PixelL1Loss(_PixelLoss):
    """Mean absolute error between the SR output and the HR image."""

    def elementwise(self, pred, target):
        return (pred - target).abs()


@MODELS.register_module()
class PixelMSELoss(_PixelLoss):
    """Mean squared error between the SR output and the HR image."""

    def elementwise(self, pred, target):
        return (pred - target) ** 2


@MODELS.register_module()
class PixelCharbonnierLoss(_PixelLoss):
    """Charbonnier (smooth L1) loss ``sqrt((pred - target)^2 + eps^2)``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', eps: float = 1e-12):
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def elementwise(self, pred, target):
        return torch.sqrt((pred - target) ** 2 + self.eps)
