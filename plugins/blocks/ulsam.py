"""ULSAM: "ULSAM: Ultra-Lightweight Subspace Attention Module" (Saini et al., WACV 2020, arXiv 2006.15102).

Channels are split into g subspaces; each learns one spatial attention map (Sec. 3, Eq. 1-2):
``A_n = softmax(PW_1(maxpool_3x3(DW_1x1(F_n))))`` over the H*W positions, and
``F^_n = (A_n (x) F_n) (+) F_n``; the outputs are concatenated. Cost: O(HW * C), 3C + g params.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .base import PluginBlock


@MODELS.register_module()
class ULSAMBlock(PluginBlock):
    """Subspace attention.

    Args:
        in_channels: channels C of the input (divisible by ``num_subspaces``).
        num_subspaces: g, the number of channel groups, each with its own attention map.
        with_norm_act: add BatchNorm + ReLU after the depth-wise and point-wise convs, as the
            official code does (the paper's Eq. 1 has none; default False = the paper).
        identity_init: see :class:`PluginBlock`.
    """
    _abbr_ = 'ulsam'

    def __init__(self, in_channels: int, num_subspaces: int = 4, with_norm_act: bool = False,
                 identity_init: bool = False, init_cfg=None):
        super().__init__(in_channels, identity_init, init_cfg)
        if in_channels % num_subspaces:
            raise ValueError(f'ULSAMBlock: in_channels={in_channels} is not divisible by '
                             f'num_subspaces={num_subspaces}')
        self.num_subspaces = num_subspaces
        self.dw_conv = nn.Conv2d(in_channels, in_channels, 1, groups=in_channels)
        # one 1x1 conv per subspace, C/g -> 1 channel, as a grouped conv
        self.pw_conv = nn.Conv2d(in_channels, num_subspaces, 1, groups=num_subspaces)
        self.with_norm_act = with_norm_act
        if with_norm_act:
            self.dw_norm = nn.BatchNorm2d(in_channels)
            self.pw_norm = nn.BatchNorm2d(num_subspaces)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        a = self.dw_conv(x)
        if self.with_norm_act:
            a = F.relu(self.dw_norm(a))
        a = self.pw_conv(F.max_pool2d(a, 3, stride=1, padding=1))
        if self.with_norm_act:
            a = F.relu(self.pw_norm(a))
        a = a.flatten(2).softmax(dim=-1).view(b, self.num_subspaces, 1, h, w)
        groups = x.view(b, self.num_subspaces, c // self.num_subspaces, h, w)
        return (groups * a + groups).view(b, c, h, w)
