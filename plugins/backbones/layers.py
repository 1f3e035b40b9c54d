"""Small layers that several backbones of the toolkit share (no attention in here)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch.nn.init import trunc_normal_


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm's ``LayerNorm2d``)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNormAct(nn.Module):
    """Convolution (no bias), norm, activation, with 'same' padding (keys ``conv``, ``bn``): the
    ``Conv`` brick of Ultralytics YOLO (SiLU). Unlike mmcv's ``ConvModule`` it keeps PyTorch's
    default initialisation, as Ultralytics does."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='SiLU')):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              bias=False)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = build_activation_layer(act_cfg)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


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


class PreNormBlock(nn.Module):
    """Body of the pre-norm transformer blocks (NCHW in and out), with ``norm1``, ``attn`` (a
    ``(B, C, H, W)`` mixer), ``norm2``, ``mlp`` (channels-last), ``drop_path`` and optional
    layer-scale vectors ``gamma1`` / ``gamma2`` (set them after ``super().__init__()``):
    ``x + gamma1 * attn(LN(x))``, then ``x + gamma2 * MLP(LN(x))``."""

    def __init__(self):
        super().__init__()
        self.gamma1 = self.gamma2 = None

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)  # B C H W -> B H W C
        attn = self.attn(self.norm1(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if self.gamma1 is not None:
            attn = self.gamma1 * attn
        x = x + self.drop_path(attn)
        mlp = self.mlp(self.norm2(x))
        if self.gamma2 is not None:
            mlp = self.gamma2 * mlp
        x = x + self.drop_path(mlp)
        return x.permute(0, 3, 1, 2)


def pvt_init_(module: nn.Module) -> None:
    """The initialisation of the PVT / VAN family's official code, in place: Linear weights
    truncated normal (std 0.02), Conv2d weights normal with std ``sqrt(2 / fan_out)``, biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, (2.0 / fan_out) ** 0.5)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def resize_grid_embedding(embed: torch.Tensor, src_size, dst_size) -> torch.Tensor:
    """An embedding laid out row-major on a grid, ``(1, h0 * w0, C)``, resampled to another grid
    ``(1, h * w, C)`` by bicubic interpolation (``align_corners=False``), as DeiT / ConViT resize
    the position embedding for fine-tuning at another resolution. Unchanged when the grids agree."""
    src_size, dst_size = tuple(src_size), tuple(dst_size)
    if src_size == dst_size:
        return embed
    grid = embed.reshape(1, *src_size, embed.shape[-1]).permute(0, 3, 1, 2)  # 1 C h0 w0
    grid = F.interpolate(grid, size=dst_size, mode='bicubic', align_corners=False)
    return grid.flatten(2).transpose(1, 2)
