"""PSA: "Polarized Self-Attention: Towards High-quality Pixel-wise Regression" (Liu et al., arXiv 2107.00782).

Two branches that keep high internal resolution (Sec. 3.1):
channel-only ``A_ch = sigmoid(LN(W_z(W_v(x) @ softmax_HW(W_q(x))^T)))`` with W_v: C -> C/2,
W_q: C -> 1, W_z: C/2 -> C (Eq. 1), and spatial-only
``A_sp = sigmoid(softmax_C(GAP(W_q(x))) @ W_v(x))`` with W_q, W_v: C -> C/2 (Eq. 3).
Parallel layout: ``A_ch * x + A_sp * x`` (Eq. 5); sequential: ``A_sp(z) * z`` with ``z = A_ch * x``
(Eq. 6). The official code deviates (survey): no LayerNorm and a softmax over H*W after the
product in its parallel block; this follows the paper's equations. Cost: O(HW * C^2 / 2).
"""
import torch
import torch.nn as nn

from ..registry import MODELS
from .base import PluginBlock


@MODELS.register_module()
class PSABlock(PluginBlock):
    """Polarized self-attention, ``mode='parallel'`` (PSA_p) or ``'sequential'`` (PSA_s).

    Args:
        in_channels: channels C of the input (even).
        mode: 'parallel' or 'sequential'.
        identity_init: see :class:`PluginBlock`.
    """
    _abbr_ = 'psa'

    def __init__(self, in_channels: int, mode: str = 'parallel', identity_init: bool = False,
                 init_cfg=None):
        super().__init__(in_channels, identity_init, init_cfg)
        if mode not in ('parallel', 'sequential'):
            raise ValueError(f"PSABlock mode must be 'parallel' or 'sequential', got {mode!r}")
        if in_channels % 2:
            raise ValueError(f'PSABlock needs an even in_channels, got {in_channels}')
        half = in_channels // 2
        self.mode = mode
        self.ch_value = nn.Conv2d(in_channels, half, 1)
        self.ch_query = nn.Conv2d(in_channels, 1, 1)
        self.ch_up = nn.Conv2d(half, in_channels, 1)
        self.ch_norm = nn.LayerNorm([in_channels, 1, 1])
        self.sp_value = nn.Conv2d(in_channels, half, 1)
        self.sp_query = nn.Conv2d(in_channels, half, 1)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """A_ch of Eq. 1: (B, C, 1, 1)."""
        v = self.ch_value(x).flatten(2)                          # B C/2 HW
        q = self.ch_query(x).flatten(2).softmax(dim=-1)          # B 1 HW
        z = torch.bmm(v, q.transpose(1, 2))[..., None]           # B C/2 1 1
        return torch.sigmoid(self.ch_norm(self.ch_up(z)))

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        """A_sp of Eq. 3: (B, 1, H, W)."""
        b, _, h, w = x.shape
        q = self.sp_query(x).mean(dim=(2, 3)).softmax(dim=-1)    # B C/2
        v = self.sp_value(x).flatten(2)                          # B C/2 HW
        return torch.sigmoid(torch.bmm(q[:, None, :], v)).view(b, 1, h, w)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == 'parallel':
            return self.channel_gate(x) * x + self.spatial_gate(x) * x
        z = self.channel_gate(x) * x
        return self.spatial_gate(z) * z
