"""A generic SR trunk around any registered token mixer: try any paper's attention for SR.

``MixerSRNet(mixer=dict(type='ShiftedWindowAttention', window_size=8))`` builds
``conv3x3 -> groups x (blocks x [x + mixer(LN(x)); x + GDFN(LN(x))] -> conv3x3, residual) ->
conv3x3 -> pixel shuffle``, the SwinIR-light / DLGSANet layout with the attention swapped. The
mixer is built from the registry as ``Mixer(dim, num_heads, **params)`` and must map
(B, C, H, W) to (B, C, H, W) (the mixer contract of the toolkit); padding to its window or
region size is the mixer's business.
"""
from typing import Optional

import torch
import torch.nn as nn

from plugins.registry import MODELS
from .dlgsanet import GDFN, LayerNorm2d
from .net_base import SRNetwork, pixel_shuffle_tail


class MixerBlock(nn.Module):
    """Pre-norm transformer block: ``x + mixer(LN(x))``, ``x + GDFN(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, mixer: dict, ffn_expansion: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        params = {k: v for k, v in mixer.items()}
        self.mixer = MODELS.build(dict(params, dim=dim, num_heads=num_heads))
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GDFN(dim, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer(self.norm1(x))
        if y.shape != x.shape:
            raise ValueError(f'mixer {type(self.mixer).__name__} returned {tuple(y.shape)} for '
                             f'an input {tuple(x.shape)}; a mixer must keep (B, C, H, W)')
        x = x + y
        return x + self.ffn(self.norm2(x))


@MODELS.register_module()
class MixerSRNet(SRNetwork):
    """SR network whose attention is any registered toolkit mixer.

    Args:
        mixer: config of the mixer without ``dim`` / ``num_heads`` (filled in here).
        upscale: 2, 3 or 4.
        dim, num_heads: width and heads of every block.
        groups, blocks: residual groups and blocks per group.
        ffn_expansion: GDFN expansion.
    """

    def __init__(self,
                 mixer: dict,
                 upscale: int = 2,
                 in_channels: int = 3,
                 dim: int = 48,
                 num_heads: int = 4,
                 groups: int = 3,
                 blocks: int = 2,
                 ffn_expansion: float = 2.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(upscale, init_cfg)
        if 'type' not in mixer:
            raise KeyError("MixerSRNet: mixer needs a 'type' (a registered token mixer)")
        self.conv_first = nn.Conv2d(in_channels, dim, 3, 1, 1)
        self.groups = nn.ModuleList()
        for _ in range(groups):
            group = nn.Module()
            group.blocks = nn.Sequential(*[MixerBlock(dim, num_heads, mixer, ffn_expansion)
                                           for _ in range(blocks)])
            group.conv = nn.Conv2d(dim, dim, 3, 1, 1)
            self.groups.append(group)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        self.upsample = pixel_shuffle_tail(dim, in_channels, upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        body = feat
        for group in self.groups:
            body = body + group.conv(group.blocks(body))
        return self.upsample(self.conv_after_body(body) + feat)
