"""VAN: "Visual Attention Network" (Guo, Lu, Liu, Liu, Hu; arXiv 2202.09741).

A hierarchical CNN whose token mixer is Large Kernel Attention (LKA, Sec. 3.1): long-range,
spatially and channel-adaptive attention from a decomposed 21x21 convolution, linear in tokens.
Four stages of overlapping patch embeddings (7x7 stride 4, then 3x3 stride 2) and blocks of
``BN -> SpatialAttention(1x1, GELU, LKA, 1x1) + shortcut`` and ``BN -> ConvFFN`` with layer scale
(Sec. 3.3, Fig. 3); each stage ends with a LayerNorm. No size constraint: any H, W.
"""
import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from ..blocks.lka import LargeKernelAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import pvt_init_


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (VAN's per-stage ``norm{i}``)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class OverlapPatchEmbed(nn.Module):
    """Strided conv with kernel > stride, then a norm: ``ceil(H / stride)`` outputs per side."""

    def __init__(self, in_channels, embed_dim, patch_size, stride, norm_cfg):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride, patch_size // 2)
        self.norm = build_norm_layer(norm_cfg, embed_dim)[1]

    def forward(self, x):
        return self.norm(self.proj(x))


class SpatialAttention(nn.Module):
    """``x + proj_2(LKA(GELU(proj_1(x))))`` (Fig. 3 (a))."""

    def __init__(self, dim, act_cfg):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = build_activation_layer(act_cfg)
        self.lka = LargeKernelAttention(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return x + self.proj_2(self.lka(self.activation(self.proj_1(x))))


class ConvFFN(nn.Module):
    """1x1 conv, 3x3 depth-wise conv, GELU, 1x1 conv (the FFN of Fig. 3 (b))."""

    def __init__(self, dim, hidden, act_cfg, drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.dwconv(self.fc1(x))))))


class VANBlock(nn.Module):
    """``x + ls1 * Attn(BN(x))``, then ``x + ls2 * FFN(BN(x))``; layer scales start at 1e-2."""

    def __init__(self, dim, mlp_ratio, drop_path, norm_cfg, act_cfg, layer_scale_init=1e-2):
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.attn = SpatialAttention(dim, act_cfg)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), act_cfg)
        self.layer_scale_1 = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class VANStage(nn.Module):

    def __init__(self, in_channels, dim, depth, mlp_ratio, first, drop_paths, norm_cfg, act_cfg):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, 7 if first else 3,
                                             4 if first else 2, norm_cfg)
        self.blocks = nn.ModuleList(
            VANBlock(dim, mlp_ratio, drop_paths[j], norm_cfg, act_cfg) for j in range(depth))
        self.norm = ChannelLayerNorm(dim, eps=1e-6)


@MODELS.register_module()
class VAN(AttentionBackbone):
    """Visual Attention Network backbone, presets B0-B3 (the official tiny/small/base/large).

    Example::

        backbone=dict(type='VAN', arch='b0', out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='van_tiny_754.pth.tar'))

    Args:
        arch: 'b0' | 'b1' | 'b2' | 'b3' (aliases 'tiny', 'small', 'base', 'large') or a dict with
            ``embed_dims``, ``depths``, ``mlp_ratios``.
        norm_cfg: the norm inside blocks and patch embeddings (BN in the paper; SyncBN for
            multi-GPU detection).
        act_cfg: activation (GELU in the paper).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'b0': dict(embed_dims=[32, 64, 160, 256], depths=[3, 3, 5, 2], mlp_ratios=[8, 8, 4, 4]),
        'b1': dict(embed_dims=[64, 128, 320, 512], depths=[2, 2, 4, 2], mlp_ratios=[8, 8, 4, 4]),
        'b2': dict(embed_dims=[64, 128, 320, 512], depths=[3, 3, 12, 3], mlp_ratios=[8, 8, 4, 4]),
        'b3': dict(embed_dims=[64, 128, 320, 512], depths=[3, 5, 27, 3], mlp_ratios=[8, 8, 4, 4]),
    }
    arch_zoo.update(tiny=arch_zoo['b0'], small=arch_zoo['b1'], base=arch_zoo['b2'],
                    large=arch_zoo['b3'])
    converter = 'van'

    def __init__(self, arch='b0', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False,
                 norm_cfg=dict(type='BN', requires_grad=True), act_cfg=dict(type='GELU'),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        dims, depths = self.arch_settings['embed_dims'], self.arch_settings['depths']
        rates = self.drop_path_rates(depths)
        self.stages = nn.ModuleList(
            VANStage(in_channels if i == 0 else dims[i - 1], dims[i], depths[i],
                     self.arch_settings['mlp_ratios'][i], i == 0, rates[i], norm_cfg, act_cfg)
            for i in range(len(dims)))
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.patch_embed(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            x = stage.norm(x)
            outs.append(x)
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            pvt_init_(self)
        super().init_weights()
