"""STViT: "Vision Transformer with Super Token Sampling" (Huang et al., CVPR 2023, arXiv
2211.11167).

A hierarchical transformer whose early stages attend globally through super tokens (the paper's
super token attention, :class:`~plugins.mixers.super_token.SuperTokenAttention`: sparse
association of pixels to the super tokens of the 3x3 cells around them, self-attention among the
super tokens, mapping back), and whose late stages (super token size 1) use plain global
multi-head self-attention. Each block (the paper's super token transformer block, Sec. 3.2) is
``x = x + DWConv3x3(x)`` (convolutional position embedding), ``x = x + STA(LN(x))``,
``x = x + ConvFFN(BN(x))`` with ConvFFN = 1x1 conv - GELU - (h + DWConv3x3(h)) - 1x1 conv, and a
layer scale in the late stages of the base / large models. Convolutional stem (four 3x3
convolutions, two of stride 2, GELU + BN each) and 3x3 stride-2 convolution + BN between stages.

Any H, W: the strided convolutions (padding 1) give ``ceil(H / stride)`` maps, and super token
attention zero-pads its input to cell multiples and crops back (as the official code). The
classifier's 1x1 projection to 1024 channels, BN and Swish are not part of the backbone.

Parity with the official ``models/stvit.py`` (hhb072/STViT) run beside this one with the same
weights converted by the ``stvit`` converter (eval, random weights): float64 max abs diff 2e-12;
fp32 <= 3e-6 relative to the outputs (abs 6.9e-5 for Small; details in
``tests/backbones/test_stvit.py``).
"""
import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.super_token import SuperTokenAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm


class ResidualDepthwiseConv(nn.Module):
    """``x + DWConv_k(x)`` (STViT's convolutional position embedding and ConvFFN middle layer)."""

    def __init__(self, dim, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x):
        return x + self.conv(x)


class ConvFFN(nn.Module):
    """1x1 conv - activation - ``h + DWConv3x3(h)`` - 1x1 conv, on NCHW maps."""

    def __init__(self, dim, hidden, act_cfg=dict(type='GELU'), drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = build_activation_layer(act_cfg)
        self.conv = ResidualDepthwiseConv(hidden, 3)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.conv(self.drop(self.act(self.fc1(x))))
        return self.drop(self.fc2(x))


class SuperTokenBlock(nn.Module):
    """STViT's block on NCHW maps: position conv, super token attention, ConvFFN, optional layer
    scale (``gamma_1``, ``gamma_2`` of shape (1, C, 1, 1))."""

    def __init__(self, dim, num_heads, stoken_size, n_iter=1, mlp_ratio=4., drop_path=0.,
                 layer_scale=None, norm_cfg=dict(type='BN'), act_cfg=dict(type='GELU')):
        super().__init__()
        self.pos_embed = ResidualDepthwiseConv(dim, 3)
        self.norm1 = ChannelLayerNorm(dim, eps=1e-6)
        self.attn = SuperTokenAttention(dim, num_heads, stoken_size, n_iter, qkv_bias=True)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if layer_scale is not None:
            self.gamma_1 = nn.Parameter(torch.full((1, dim, 1, 1), float(layer_scale)))
            self.gamma_2 = nn.Parameter(torch.full((1, dim, 1, 1), float(layer_scale)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x):
        x = self.pos_embed(x)
        attn = self.attn(self.norm1(x))
        if self.gamma_1 is not None:
            attn = self.gamma_1 * attn
        x = x + self.drop_path(attn)
        mlp = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            mlp = self.gamma_2 * mlp
        return x + self.drop_path(mlp)


class STViTStem(nn.Module):
    """conv3x3/2 - GELU - BN - conv3x3 - GELU - BN - conv3x3/2 - GELU - BN - conv3x3 - GELU - BN
    (the official ``PatchEmbed``; widths C/2, C/2, C, C)."""

    def __init__(self, in_channels, dim, norm_cfg=dict(type='BN'), act_cfg=dict(type='GELU')):
        super().__init__()
        layers, widths = [], [(in_channels, dim // 2, 2), (dim // 2, dim // 2, 1),
                              (dim // 2, dim, 2), (dim, dim, 1)]
        for cin, cout, stride in widths:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), build_activation_layer(act_cfg),
                       build_norm_layer(norm_cfg, cout)[1]]
        self.proj = nn.Sequential(*layers)

    def forward(self, x):
        return self.proj(x)


class STViTDownsample(nn.Module):
    """3x3 stride-2 convolution + BN (the official ``PatchMerging``)."""

    def __init__(self, in_channels, dim, norm_cfg=dict(type='BN')):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, dim, 3, 2, 1),
                                  build_norm_layer(norm_cfg, dim)[1])

    def forward(self, x):
        return self.proj(x)


class STViTStage(nn.Module):
    def __init__(self, downsample, blocks):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)


@MODELS.register_module()
class STViT(AttentionBackbone):
    """STViT backbone, presets Small / Base / Large (the official ``stvit_small / base / large``;
    25M / 52M / 95M with their ImageNet classifier).

    Example::

        backbone=dict(type='STViT', arch='small', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='stvit_small.pth'))

    Args:
        arch: 'small' | 'base' | 'large' (aliases 's', 'b', 'l') or a dict with ``embed_dims``,
            ``depths``, ``num_heads``, ``stoken_sizes`` (cell side per stage; 1 = global MHSA),
            ``layer_scale`` (per stage: the initial value of the layer scale, or None for none).
        n_iter: association rounds of super token sampling (1, as the official models).
        mlp_ratio: hidden width of the ConvFFNs (4).
        norm_cfg: the BatchNorms (stem, down-sampling, pre-FFN norms); e.g. SyncBN for detection.
        act_cfg: activation of the stem and the ConvFFNs (GELU).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'small': dict(embed_dims=[64, 128, 320, 512], depths=[3, 5, 9, 3],
                      num_heads=[1, 2, 5, 8], stoken_sizes=[8, 4, 1, 1],
                      layer_scale=[None, None, None, None]),
        'base': dict(embed_dims=[96, 192, 384, 512], depths=[4, 6, 14, 6],
                     num_heads=[2, 3, 6, 8], stoken_sizes=[8, 4, 1, 1],
                     layer_scale=[None, None, 1e-6, 1e-6]),
        'large': dict(embed_dims=[96, 192, 448, 640], depths=[4, 7, 19, 8],
                      num_heads=[2, 3, 7, 10], stoken_sizes=[8, 4, 1, 1],
                      layer_scale=[None, None, 1e-6, 1e-6]),
    }
    arch_zoo.update(s=arch_zoo['small'], b=arch_zoo['base'], l=arch_zoo['large'])
    converter = 'stvit'

    def __init__(self, arch='small', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, n_iter=1, mlp_ratio=4.,
                 norm_cfg=dict(type='BN', requires_grad=True), act_cfg=dict(type='GELU'),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths, heads, stokens, scales = (s['embed_dims'], s['depths'], s['num_heads'],
                                                s['stoken_sizes'], s['layer_scale'])
        if not len(dims) == len(depths) == len(heads) == len(stokens) == len(scales):
            raise ValueError(f'STViT arch: embed_dims {dims}, depths {depths}, num_heads {heads}, '
                             f'stoken_sizes {stokens} and layer_scale {scales} must have one '
                             f'entry per stage')
        rates = self.drop_path_rates(depths)
        stages = []
        for i, dim in enumerate(dims):
            downsample = (STViTStem(in_channels, dim, norm_cfg, act_cfg) if i == 0
                          else STViTDownsample(dims[i - 1], dim, norm_cfg))
            blocks = [SuperTokenBlock(dim, heads[i], stokens[i], n_iter, mlp_ratio, rates[i][j],
                                      scales[i], norm_cfg, act_cfg) for j in range(depths[i])]
            stages.append(STViTStage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(x)
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation (linear layers: none here)
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
