"""ECA: "ECA-Net: Efficient Channel Attention for Deep CNNs" (Wang et al., CVPR 2020, arXiv 1910.03151).

Channel attention without dimensionality reduction: global average pooling, then a 1-D conv of
size k across neighbouring channels, then a sigmoid gate (Sec. 3.2, Eq. 7). k adapts to the channel
count: ``k = |log2(C) / gamma + b / gamma|_odd`` with gamma = 2, b = 1 (Eq. 12).
Cost: O(HW * C + C * k), k parameters.
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from ..registry import MODELS
from .base import PluginBlock


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The nearest odd number to ``(log2(C) + b) / gamma`` (Eq. 12, rounded as the paper's code)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@MODELS.register_module()
class ECABlock(PluginBlock):
    """Efficient channel attention: ``x * sigmoid(conv1d_k(GAP(x)))``.

    Args:
        in_channels: channels C of the input; they set k when ``kernel_size`` is None.
        kernel_size: fixed k (odd), or None for the adaptive k of Eq. 12.
        gamma, b: the constants of Eq. 12.
        identity_init: see :class:`PluginBlock`.
    """
    _abbr_ = 'eca'

    def __init__(self, in_channels: int, kernel_size: Optional[int] = None, gamma: float = 2,
                 b: float = 1, identity_init: bool = False, init_cfg=None):
        super().__init__(in_channels, identity_init, init_cfg)
        k = kernel_size or eca_kernel_size(in_channels, gamma, b)
        if k % 2 == 0:
            raise ValueError(f'ECABlock kernel_size must be odd, got {k}')
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3))[:, None, :]            # B 1 C
        y = torch.sigmoid(self.conv(y))[:, 0, :, None, None]
        return x * y
