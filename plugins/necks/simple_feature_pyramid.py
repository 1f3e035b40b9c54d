"""Simple feature pyramid: "Exploring Plain Vision Transformer Backbones for Object Detection"
(ViTDet, Li et al., arXiv 2203.16527), Sec. 3 and Fig. 2 (c).

An isotropic backbone (ViT, ConViT, TNT, Hyena ViT) gives one map at stride 16; the pyramid is made
from that last map alone: stride 4 by two 2x2 transposed convolutions (LayerNorm + GELU between),
stride 8 by one, stride 16 as it is, stride 32 by 2x2 max-pooling; each level then gets a 1x1 and a
3x3 convolution to ``out_channels``, each followed by a LayerNorm over channels (the paper's
"LN" variant). Extra levels (the RPN's P6) are max-pooled from the coarsest, as ViTDet does.
"""
from typing import Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..backbones.layers import ChannelLayerNorm
from ..registry import MODELS


def _rescale(channels: int, scale: float) -> nn.Module:
    """The layers taking a map at the backbone's stride to ``stride / scale``."""
    if scale == 4.0:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels // 2, 2, 2),
                             ChannelLayerNorm(channels // 2), nn.GELU(),
                             nn.ConvTranspose2d(channels // 2, channels // 4, 2, 2))
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, 2, 2)
    if scale == 1.0:
        return nn.Identity()
    if scale == 0.5:
        return nn.MaxPool2d(2, 2, ceil_mode=True)
    raise ValueError(f'SimpleFeaturePyramid: scale factor {scale} is not one of 4, 2, 1, 0.5')


def _scaled_channels(channels: int, scale: float) -> int:
    return {4.0: channels // 4, 2.0: channels // 2}.get(scale, channels)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from the last map of a single-scale backbone (ViTDet's simple pyramid).

    Args:
        in_channels: channels of the backbone's maps (an int, or the backbone's ``out_channels``
            list: its last entry is used, as the pyramid is built from the last map).
        out_channels: channels of every output level.
        scale_factors: resampling of the last map per level (4: stride 16 -> 4, 2, 1, 0.5).
        num_outs: levels returned; those beyond ``scale_factors`` are stride-2 max-pools of the
            coarsest (5 for the RPN of Mask R-CNN / RetinaNet, as FPN's ``num_outs``).
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        channels = in_channels if isinstance(in_channels, int) else list(in_channels)[-1]
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = len(self.scale_factors) if num_outs is None else num_outs
        if self.num_outs < len(self.scale_factors):
            raise ValueError(f'SimpleFeaturePyramid: num_outs ({num_outs}) is less than the '
                             f'{len(self.scale_factors)} scale factors')
        if channels % 4:
            raise ValueError(f'SimpleFeaturePyramid: in_channels ({channels}) must be divisible '
                             f'by 4 for the stride-4 level')
        self.rescales = nn.ModuleList(_rescale(channels, s) for s in self.scale_factors)
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(_scaled_channels(channels, s), out_channels, 1, bias=False),
                          ChannelLayerNorm(out_channels))
            for s in self.scale_factors)
        self.output = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                          ChannelLayerNorm(out_channels))
            for _ in self.scale_factors)

    def forward(self, inputs):
        x = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        outs = [out(lat(rescale(x)))
                for rescale, lat, out in zip(self.rescales, self.lateral, self.output)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
