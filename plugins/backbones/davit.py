"""DaViT: "DaViT: Dual Attention Vision Transformers" (Ding, Xiao, Codella, Luo, Wang, Yuan;
ECCV 2022, arXiv 2204.03645).

Four stages of dual attention blocks (the paper's method section and its block figure): a spatial
window block (multi-head self-attention inside non-overlapping 7x7 windows, no relative bias, no
shift) followed by a channel group block (the channels are the tokens: every channel group
attends among its channels with the whole map as features, so each block is global at a cost
linear in tokens). Each block adds a depth-wise 3x3 conditional position encoding (ConvPosEnc)
before its attention and before its MLP. A 7x7 stride-4 convolution stem + LayerNorm, and
LayerNorm + 2x2 stride-2 convolution between stages; detection and segmentation read every stage
through a LayerNorm (the official mmdet / mmseg backbone's ``norm0..3``).

Any H, W, as the official code and timm: the stem pads the image to a multiple of 4, each
down-sampling pads its map to even sizes, and the window mixer zero-pads its (normalised) input to
window multiples and crops, so each output is ``ceil(H / stride)``. Parity with timm 1.0
(``davit_tiny/small/base``) with the same weights converted by the ``davit`` converter (fp32,
eval, stage outputs without the output norms, random LayerNorm affines, ConvPosEnc weights scaled
by 0.1 so that activations stay O(1-10) as in trained models): max abs diff over the four stages at
224x224, 97x131 and 33x250: 4.1e-6 (Tiny), 4.0e-6 (Small), 5.7e-6 (Base); every block alone agrees
to a few float32 ulps. (At timm's from-scratch init, Small's stage 3 reaches |x| ~ 3600 and the
difference 3.5e-3, i.e. 1e-6 relative.) Re-checked by tests/backbones/test_davit.py whenever timm
is installed.
"""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.channel_group import ChannelGroupAttention
from ..mixers.window import ShiftedWindowAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, NormConvDownsample, TokenMlp


class ConvPosEnc(nn.Module):
    """DaViT's conditional position encoding: ``x + DWConv3x3(x)`` on an NCHW map."""

    def __init__(self, dim, kernel_size=3):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x):
        return x + self.proj(x)


class DaViTStem(nn.Module):
    """7x7 stride-4 convolution, then LayerNorm over channels; the image is zero-padded
    (bottom / right) to a multiple of 4 first, as the official ``PatchEmbed``."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, dim, 7, 4, 3)
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x):
        h, w = x.shape[2:]
        x = F.pad(x, (0, -w % 4, 0, -h % 4))
        return self.norm(self.conv(x))


class DaViTBlock(nn.Module):
    """One half of a dual attention block, NCHW in and out:
    ``x = CPE1(x); x = x + Attn(LN(x)); x = CPE2(x); x = x + MLP(LN(x))``, with ``Attn`` the
    spatial window attention (``attention='spatial'``) or the channel group attention
    (``attention='channel'``: ``softmax(K^T V / sqrt(C_h))`` applied to ``Q``, per group)."""

    def __init__(self, dim, num_heads, attention, window_size=7, mlp_ratio=4., qkv_bias=True,
                 drop_path=0., act_cfg=dict(type='GELU')):
        super().__init__()
        self.cpe1 = ConvPosEnc(dim)
        self.norm1 = nn.LayerNorm(dim)
        if attention == 'spatial':
            self.attn = ShiftedWindowAttention(dim, num_heads, window_size, shift_size=0,
                                               rel_pos_bias=False, qkv_bias=qkv_bias)
        elif attention == 'channel':
            self.attn = ChannelGroupAttention(dim, num_heads, qkv_bias=qkv_bias)
        else:
            raise ValueError(f"DaViT attention must be 'spatial' or 'channel', got {attention!r}")
        self.cpe2 = ConvPosEnc(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.cpe1(x)
        attn = self.attn(self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        x = self.cpe2(x + self.drop_path(attn))
        x = x.permute(0, 2, 3, 1)  # B C H W -> B H W C
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


class DaViTStage(nn.Module):
    """Down-sampling (the stem for stage 0), ``depth`` dual blocks (``blocks[j][0]`` spatial,
    ``blocks[j][1]`` channel), and the output LayerNorm."""

    def __init__(self, downsample, blocks, dim, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim) if out_norm else nn.Identity()


@MODELS.register_module()
class DaViT(AttentionBackbone):
    """DaViT backbone, presets Tiny / Small / Base (28.3M / 49.7M / 87.9M with the ImageNet
    classifier, as the official release counts).

    Example::

        backbone=dict(type='DaViT', arch='tiny', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='davit_tiny.pth'))

    Args:
        arch: 'tiny' | 'small' | 'base' (aliases 't', 's', 'b') or a dict with ``embed_dims``,
            ``depths`` (dual blocks per stage), ``num_heads``.
        window_size: side of the spatial attention windows (7). Not a size constraint.
        mlp_ratio: hidden width of the MLPs over the channels (4).
        qkv_bias: bias of the q, k, v projections (True).
        out_norm: a LayerNorm on every returned map (the official detection / segmentation
            backbone); False returns the raw stage outputs (timm's ``features_only``).
        act_cfg: activation of the MLPs (GELU).
        Others: see :class:`AttentionBackbone`. ``drop_path_rate`` rises linearly over the
        ``2 * sum(depths)`` spatial and channel blocks, as the official code.
    """
    arch_zoo = {
        'tiny': dict(embed_dims=[96, 192, 384, 768], depths=[1, 1, 3, 1],
                     num_heads=[3, 6, 12, 24]),
        'small': dict(embed_dims=[96, 192, 384, 768], depths=[1, 1, 9, 1],
                      num_heads=[3, 6, 12, 24]),
        'base': dict(embed_dims=[128, 256, 512, 1024], depths=[1, 1, 9, 1],
                     num_heads=[4, 8, 16, 32]),
    }
    arch_zoo.update(t=arch_zoo['tiny'], s=arch_zoo['small'], b=arch_zoo['base'])
    converter = 'davit'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, window_size=7, mlp_ratio=4.,
                 qkv_bias=True, out_norm=True, act_cfg=dict(type='GELU'), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths, heads = s['embed_dims'], s['depths'], s['num_heads']
        if not len(dims) == len(depths) == len(heads):
            raise ValueError(f'DaViT arch: embed_dims {dims}, depths {depths} and num_heads '
                             f'{heads} must have one entry per stage')
        rates = self.drop_path_rates([2 * d for d in depths])  # spatial, channel, spatial, ...
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            downsample = (DaViTStem(in_channels, dim) if i == 0
                          else NormConvDownsample(dims[i - 1], dim))
            blocks = [nn.Sequential(*[
                DaViTBlock(dim, heads[i], attention, window_size, mlp_ratio, qkv_bias,
                           rates[i][2 * j + k], act_cfg)
                for k, attention in enumerate(('spatial', 'channel'))]) for j in range(depth)]
            norm = out_norm and self.is_returned(i, len(dims))
            stages.append(DaViTStage(downsample, blocks, dim, norm))
        self.stages = nn.ModuleList(stages)
        self.out_norm = out_norm
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for pair in stage.blocks:
                for block in pair:
                    x = self.run_block(block, x)
            outs.append(stage.norm(x))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
