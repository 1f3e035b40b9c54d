"""Mamba-YOLO's PAFPN: "Mamba YOLO: A Simple Baseline for Object Detection with State Space Model"
(arXiv 2406.05835), the neck of its detector (the ``head`` section of the official YAMLs).

A path-aggregation FPN (top-down, then bottom-up) on P3-P5 whose fusion blocks are XSSBlocks: the
concatenated maps are projected (``conv1x1-BN-SiLU``) to the output width, then
``x = x + SS2D^n(LN(LSBlock(x)))`` (``n`` SS2D in sequence, one LSBlock) and
``x = x + RGBlock(LN(x))``. Top-down: P5 up-sampled (nearest, x2) and concatenated with P4 gives
the P4' block, P4' up-sampled with P3 gives the P3 output; bottom-up: the P3 output down-sampled by
a 3x3 stride-2 ``conv-BN-SiLU`` and concatenated with P4' gives the P4 output, the P4 output
down-sampled with P5 gives the P5 output. For odd map sizes the up-sampled map is cropped to the
lateral one (exactly the official result wherever the official code runs: sizes that are
multiples of 32).
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from ..backbones.layers import ChannelLayerNorm, ConvNormAct
from ..backbones.mamba_yolo import YOLO_BN, LSBlock, RGBlock, mamba_yolo_ss2d
from ..registry import MODELS


class XSSBlock(nn.Module):
    """The neck block of Mamba-YOLO: ``in_proj`` (when the widths differ), then
    ``x + SS2D^n(LN(LSBlock(x)))`` and ``x + RGBlock(LN(x))``."""

    def __init__(self, in_channels: int, dim: int, num_ss2d: int = 1, mlp_ratio: float = 4.0,
                 ssm_ratio: float = 2.0, d_state: int = 16, norm_cfg=YOLO_BN):
        super().__init__()
        self.in_proj = nn.Sequential(
            nn.Conv2d(in_channels, dim, 1, bias=False), build_norm_layer(norm_cfg, dim)[1],
            nn.SiLU()) if in_channels != dim else nn.Identity()
        self.norm = ChannelLayerNorm(dim, eps=1e-6)
        self.ss2d = nn.Sequential(*(mamba_yolo_ss2d(dim, d_state, ssm_ratio)
                                    for _ in range(num_ss2d)))
        self.lsblock = LSBlock(dim, norm_cfg)
        self.norm2 = ChannelLayerNorm(dim, eps=1e-6)
        self.mlp = RGBlock(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = self.in_proj(x)
        x = x + self.ss2d(self.norm(self.lsblock(x)))
        return x + self.mlp(self.norm2(x))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest x2 up-sampling, cropped to the size of ``like`` (odd sizes round up below)."""
    x = F.interpolate(x, scale_factor=2.0, mode='nearest')
    return x[..., :like.shape[2], :like.shape[3]]


@MODELS.register_module()
class MambaYOLOPAFPN(BaseModule):
    """The official Mamba-YOLO PAFPN with XSSBlocks, on (P3, P4, P5).

    Example (Mamba-YOLO-T)::

        neck=dict(type='MambaYOLOPAFPN', in_channels=[64, 128, 256],
                  out_channels=[64, 128, 256], num_ss2d=1)

    Args:
        in_channels: channels of the backbone's P3, P4, P5.
        out_channels: channels of the P3, P4, P5 outputs (the YAMLs' ``256, 512, 1024`` after
            width scaling: equal to the backbone's for T / B / L).
        num_ss2d: SS2D per XSSBlock (the YAMLs' 3 after depth scaling: 1 for T / B, 2 for L).
        mlp_ratio, ssm_ratio, d_state: as the backbone's (4, 2, 16).
        norm_cfg: BatchNorm of the convs (Ultralytics' eps 1e-3, momentum 0.03).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int],
                 num_ss2d: int = 1, mlp_ratio: float = 4.0, ssm_ratio: float = 2.0,
                 d_state: int = 16, norm_cfg=YOLO_BN, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError(f'MambaYOLOPAFPN takes three levels (P3, P4, P5): got in_channels '
                             f'{list(in_channels)} and out_channels {list(out_channels)}; use '
                             f'out_indices=(1, 2, 3) on the MambaYOLO backbone')
        c3, c4, c5 = in_channels
        o3, o4, o5 = out_channels
        self.in_channels, self.out_channels = list(in_channels), list(out_channels)

        def block(cin, cout):
            return XSSBlock(cin, cout, num_ss2d, mlp_ratio, ssm_ratio, d_state, norm_cfg)

        self.top_down_blocks = nn.ModuleList([block(c5 + c4, o4), block(o4 + c3, o3)])
        self.downsamples = nn.ModuleList([ConvNormAct(o3, o3, 3, 2, norm_cfg=norm_cfg),
                                          ConvNormAct(o4, o4, 3, 2, norm_cfg=norm_cfg)])
        self.bottom_up_blocks = nn.ModuleList([block(o3 + o4, o4), block(o4 + c5, o5)])

    def forward(self, inputs):
        if len(inputs) != 3:
            raise ValueError(f'MambaYOLOPAFPN takes three maps (P3, P4, P5), got {len(inputs)}')
        for x, c, name in zip(inputs, self.in_channels, ('P3', 'P4', 'P5')):
            if x.shape[1] != c:
                raise ValueError(f'MambaYOLOPAFPN: {name} has {x.shape[1]} channels but the neck '
                                 f'was built with in_channels {self.in_channels}')
        p3, p4, p5 = inputs
        t4 = self.top_down_blocks[0](torch.cat([upsample_to(p5, p4), p4], dim=1))
        out3 = self.top_down_blocks[1](torch.cat([upsample_to(t4, p3), p3], dim=1))
        out4 = self.bottom_up_blocks[0](torch.cat([self.downsamples[0](out3), t4], dim=1))
        out5 = self.bottom_up_blocks[1](torch.cat([self.downsamples[1](out4), p5], dim=1))
        return out3, out4, out5
