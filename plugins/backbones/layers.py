"""Small layers that several backbones of the toolkit share (no attention in here)."""
import torch.nn as nn
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
