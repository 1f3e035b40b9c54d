"""ELA: "ELA: Efficient Local Attention for Deep CNNs" (Xu & Wan, arXiv 2403.01123).

Strip pooling along each axis (Eq. 1-2), a shared 1-D conv with GroupNorm and a sigmoid on each
strip (Eq. 3-4), and the product of the two positional maps as the gate (Eq. 5):
``y = x * sigmoid(GN(conv1d(mean_W x)))[..., None] * sigmoid(GN(conv1d(mean_H x)))[..., None, :]``.
No channel reduction. Cost: O(HW * C + (H + W) * C * k / groups).
"""
import math

import torch
import torch.nn as nn

from ..registry import MODELS
from .base import PluginBlock

# Sec. 3.3, Table: variant -> (kernel size, conv groups as a divisor of C, GroupNorm groups)
ELA_VARIANTS = {
    'T': dict(kernel_size=5, channels_per_group=1, norm_groups=32),
    'B': dict(kernel_size=7, channels_per_group=1, norm_groups=16),
    'S': dict(kernel_size=5, channels_per_group=8, norm_groups=16),
    'L': dict(kernel_size=7, channels_per_group=8, norm_groups=16),
}


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


@MODELS.register_module()
class ELABlock(PluginBlock):
    """Efficient local attention, variants T / B / S / L of the paper.

    Args:
        in_channels: channels C of the input.
        variant: 'T' (k5, depth-wise, GN32), 'B' (k7, depth-wise, GN16),
            'S' (k5, groups C/8, GN16), 'L' (k7, groups C/8, GN16).
        identity_init: see :class:`PluginBlock`.

    When C is not divisible by the variant's GroupNorm groups (e.g. ELA-T with fewer than 32
    channels), the largest divisor of C below that number is used; likewise for the conv groups.
    """
    _abbr_ = 'ela'

    def __init__(self, in_channels: int, variant: str = 'T', identity_init: bool = False,
                 init_cfg=None):
        super().__init__(in_channels, identity_init, init_cfg)
        if variant.upper() not in ELA_VARIANTS:
            raise KeyError(f'ELABlock variant must be one of {sorted(ELA_VARIANTS)}, got '
                           f'{variant!r}')
        spec = ELA_VARIANTS[variant.upper()]
        conv_groups = _largest_divisor_at_most(
            in_channels, math.ceil(in_channels / spec['channels_per_group']))
        norm_groups = _largest_divisor_at_most(in_channels, spec['norm_groups'])
        k = spec['kernel_size']
        self.variant = variant.upper()
        self.conv = nn.Conv1d(in_channels, in_channels, k, padding=k // 2, groups=conv_groups,
                              bias=False)
        self.norm = nn.GroupNorm(norm_groups, in_channels)

    def _strip_gate(self, strip: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.norm(self.conv(strip)))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        gate_h = self._strip_gate(x.mean(dim=3))      # B C H
        gate_w = self._strip_gate(x.mean(dim=2))      # B C W
        return x * gate_h[..., :, None] * gate_w[..., None, :]
