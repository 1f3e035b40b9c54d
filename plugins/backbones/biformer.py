"""BiFormer: "BiFormer: Vision Transformer with Bi-Level Routing Attention" (Zhu, Wang, Ke, Zhang,
Lau; CVPR 2023, arXiv 2303.08810).

Four stages; in the first three every block attends through bi-level routing attention (BRA,
Sec. 3.2): ``n_win x n_win`` regions, each routed to its ``topk`` most related regions (1, 4, 16 by
stage), plus LePE. The last stage, at 1/32, attends globally (the official ``topk=-2``), again with
LePE. Blocks (Sec. 3.3, Fig. 3): ``x + DWConv3x3(x)``, then pre-norm attention and a 3x MLP. A stem of
two 3x3 stride-2 convs (+BN) and 3x3 stride-2 merges. Dense tasks read every stage through a
LayerNorm (the official detection/segmentation ``extra_norms``). Any H, W: the routed mixer pads to
multiples of ``n_win`` inside and crops, like the official ``auto_pad=True``.
"""
import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.bilevel_routing import BiLevelRoutingAttention
from ..ops.global_attention import global_attention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, PreNormBlock, TokenMlp


class GlobalAttentionLePE(nn.Module):
    """Multi-head self-attention over all tokens plus LePE on the input (the last stage of
    BiFormer): ``proj(Attn(qkv(x)) + DWConv(x))``; the official ``AttentionLePE`` (8 heads, no qkv
    bias). Input and output ``(B, C, H, W)``."""

    def __init__(self, dim, num_heads=8, side_dwconv=5, qkv_bias=False):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.lepe = nn.Conv2d(dim, dim, side_dwconv, padding=side_dwconv // 2, groups=dim)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2))  # B N 3C
        q, k, v = qkv.view(b, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = global_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)  # B N C
        out = out + self.lepe(x).flatten(2).transpose(1, 2)
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class BiFormerBlock(PreNormBlock):
    """``x + DWConv3x3(x)``; ``x + Attn(LN(x))``; ``x + MLP(LN(x))`` (Fig. 3 (a)), NCHW in and out.

    ``topk > 0``: bi-level routing attention with ``topk`` regions; ``topk == -2``: global
    attention with LePE (the official code's switch for the last stage).
    """

    def __init__(self, dim, topk, num_heads, n_win, mlp_ratio, drop_path, side_dwconv=5,
                 before_attn_dwconv=3, act_cfg=dict(type='GELU')):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, before_attn_dwconv, padding=before_attn_dwconv // 2,
                                   groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if topk > 0:
            self.attn = BiLevelRoutingAttention(dim, num_heads, n_win=n_win, topk=topk,
                                                side_dwconv=side_dwconv)
        elif topk == -2:
            self.attn = GlobalAttentionLePE(dim, side_dwconv=side_dwconv)
        else:
            raise ValueError(f'BiFormer topk must be > 0 (routed regions) or -2 (global '
                             f'attention with LePE), got {topk}')
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TokenMlp(dim, int(mlp_ratio * dim), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        return super().forward(x + self.pos_embed(x))


class BiFormerStage(nn.Module):
    """Down-sampling (the stem for stage 0), blocks, and the output LayerNorm (on a returned map
    only)."""

    def __init__(self, downsample, blocks, dim, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim, eps=1e-6) if out_norm else nn.Identity()


@MODELS.register_module()
class BiFormer(AttentionBackbone):
    """BiFormer backbone, presets T/S/B (13.1M / 25.5M / 56.8M with the ImageNet classifier).

    Example::

        backbone=dict(type='BiFormer', arch='s', n_win=16, drop_path_rate=0.2,
                      init_cfg=dict(type='Pretrained', checkpoint='biformer_small_best.pth'))

    Args:
        arch: 't' | 's' | 'b' (aliases 'tiny', 'small', 'base') or a dict with ``embed_dims``,
            ``depths``, ``topks``, ``mlp_ratio``, ``head_dim``.
        n_win: regions per side of the routed stages (7 for ImageNet at 224; the official
            detection configs use 16, the segmentation configs 8). Not a size constraint: maps
            are padded to multiples of it inside each block.
        side_dwconv: LePE kernel (5). before_attn_dwconv: the conv position embedding kernel (3).
        norm_cfg: the BatchNorm of the stem and down-sampling layers. act_cfg: GELU.
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        't': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 8, 2], topks=[1, 4, 16, -2],
                  mlp_ratio=3, head_dim=32),
        's': dict(embed_dims=[64, 128, 256, 512], depths=[4, 4, 18, 4], topks=[1, 4, 16, -2],
                  mlp_ratio=3, head_dim=32),
        'b': dict(embed_dims=[96, 192, 384, 768], depths=[4, 4, 18, 4], topks=[1, 4, 16, -2],
                  mlp_ratio=3, head_dim=32),
    }
    arch_zoo.update(tiny=arch_zoo['t'], small=arch_zoo['s'], base=arch_zoo['b'])
    converter = 'biformer'

    def __init__(self, arch='t', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, n_win=7, side_dwconv=5,
                 before_attn_dwconv=3, norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='GELU'), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths = s['embed_dims'], s['depths']
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i == 0:  # two 3x3 stride-2 convs (Sec. 3.3: "overlapped patch embedding")
                downsample = nn.Sequential(
                    nn.Conv2d(in_channels, dim // 2, 3, 2, 1), build_norm_layer(norm_cfg, dim // 2)[1],
                    build_activation_layer(act_cfg),
                    nn.Conv2d(dim // 2, dim, 3, 2, 1), build_norm_layer(norm_cfg, dim)[1])
            else:
                downsample = nn.Sequential(nn.Conv2d(dims[i - 1], dim, 3, 2, 1),
                                           build_norm_layer(norm_cfg, dim)[1])
            blocks = [BiFormerBlock(dim, s['topks'][i], dim // s['head_dim'], n_win,
                                    s['mlp_ratio'], rates[i][j], side_dwconv, before_attn_dwconv,
                                    act_cfg) for j in range(depth)]
            stages.append(BiFormerStage(downsample, blocks, dim, self.is_returned(i, len(dims))))
        self.stages = nn.ModuleList(stages)
        self.n_win = n_win
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
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
