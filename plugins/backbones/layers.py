"""Small layers that several backbones of the toolkit share (no attention in here)."""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm's ``LayerNorm2d``)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TokenMlp(nn.Module):
    """``fc2(drop(act(fc1(x))))`` on channels-last tokens (the transformer MLP)."""

    def __init__(self, dim, hidden, act_cfg=dict(type='GELU'), drop=0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class NormConvDownsample(nn.Module):
    """Down-sampling of DaViT and L2ViT (and the ConvNeXt family): LayerNorm over channels,
    zero-pad to even sizes, 2x2 stride-2 convolution (keys ``norm``, ``conv``)."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.norm = ChannelLayerNorm(in_channels)
        self.conv = nn.Conv2d(in_channels, dim, 2, 2)

    def forward(self, x):
        x = self.norm(x)
        h, w = x.shape[2:]
        return self.conv(F.pad(x, (0, -w % 2, 0, -h % 2)))
