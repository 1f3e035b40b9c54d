"""FaViT: "Factorization Vision Transformer: Modeling Long Range Dependency with Local Window Cost"
(Qin, Zhou, Xu, Bian, Li; IEEE TNNLS, arXiv 2312.08614).

A four-stage pyramid (PVTv2-like: overlapping patch embeddings 7x7/4 then 3x3/2, a 3x3 depth-wise
conv inside the MLP, a LayerNorm on every stage output) whose token mixer is factorization
self-attention (FaSA, the paper's method section): the channels are split into a global group attending to the
map reduced by ``sr`` and local groups attending to ``k^2 = 49`` tokens pooled from dilated
7x7 windows over the whole map (dilation 1 and ``sr``), so every query sees the whole image at
mixed granularity with a local-window cost (:class:`~plugins.mixers.factorization.FactorizationAttention`).

Presets: the official release's ``favit_b0..b3`` (q2479036243/FaViT, ``favit.py`` of the
classification, detection and segmentation folders, identical models; the configs that the READMEs
name were deleted from the repository and are read from its history). Any H, W, as the official
code: the global group's strided reduction drops the rows / columns beyond a multiple of ``sr``
(as the official ``sr`` conv does; ``sr_remainder='pad'`` pads them instead), and the local
groups' reflection padding folds back where the official ``nn.ReflectionPad2d`` would refuse a pad
larger than the map (there the official code fails). Parity with the official model run
beside this one with the same weights (converted by the ``favit`` converter; fp32, eval,
224x224, random LayerNorm affines): max abs diff over the four stage outputs 7.2e-6 (B0),
1.6e-5 (B1), 1.0e-5 (B2), 1.3e-5 (B3).
"""
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmcv.cnn.bricks import DropPath

from ..mixers.factorization import FactorizationAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, PreNormBlock, pvt_init_


class OverlapPatchEmbed(nn.Module):
    """Conv with kernel > stride (7x7/4 for stage 1, 3x3/2 after), then a LayerNorm over
    channels: ``ceil(H / stride)`` outputs per side."""

    def __init__(self, in_channels, dim, patch_size, stride):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride, patch_size // 2)
        self.norm = ChannelLayerNorm(dim)  # eps 1e-5, as the official nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x))


class DWConvMlp(nn.Module):
    """``fc2(act(DWConv3x3(fc1(x))))`` on channels-last maps (the FaViT/PVTv2 MLP)."""

    def __init__(self, dim, hidden, act_cfg=dict(type='GELU')):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):  # B H W C
        x = self.dwconv(self.fc1(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(self.act(x))


class FaViTBlock(PreNormBlock):
    """``x + FaSA(LN(x))``, ``x + MLP(LN(x))`` (pre-norm transformer block), NCHW in and out."""

    def __init__(self, dim, num_heads, sr_ratio, mlp_ratio, drop_path, window_size=7,
                 act_cfg=dict(type='GELU'), sr_remainder='drop'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = FactorizationAttention(dim, num_heads, sr_ratio=sr_ratio,
                                           window_size=window_size, qkv_bias=True,
                                           sr_remainder=sr_remainder)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DWConvMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()


class FaViTStage(nn.Module):
    """Patch embedding, blocks, and the output LayerNorm (the official ``norm{i}``)."""

    def __init__(self, patch_embed, blocks, dim):
        super().__init__()
        self.patch_embed = patch_embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim, eps=1e-6)


@MODELS.register_module()
class FaViT(AttentionBackbone):
    """FaViT backbone, presets B0/B1/B2/B3 (3.43M / 12.96M / 24.92M / 48.75M with the ImageNet
    classifier, as the official code builds them; its README's table says 3.4 / 13 / 24 / 48: B2
    and B3 are 3.8% and 1.6% above, see ``reference.yaml``).

    Example::

        backbone=dict(type='FaViT', arch='b2', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='favit_b2.pth'))

    Args:
        arch: 'b0' | 'b1' | 'b2' | 'b3' or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (per stage) and ``window_size``.
        act_cfg: the MLP activation (GELU).
        sr_remainder: ``'drop'`` (official) or ``'pad'``: the rows / columns beyond a multiple of
            ``sr`` in the global group's reduction (see ``FactorizationAttention``).
        Others: see :class:`AttentionBackbone`.
    """
    _common = dict(num_heads=[1, 2, 4, 8], mlp_ratios=[8, 6, 4, 4], sr_ratios=[8, 4, 2, 1],
                   window_size=7)
    arch_zoo = {
        'b0': dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 6, 2], **_common),
        'b1': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 6, 2], **_common),
        'b2': dict(embed_dims=[64, 128, 256, 512], depths=[2, 3, 18, 3], **_common),
        'b3': dict(embed_dims=[96, 192, 384, 768], depths=[2, 3, 14, 3], **_common),
    }
    converter = 'favit'

    def __init__(self, arch='b0', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, act_cfg=dict(type='GELU'),
                 sr_remainder='drop', init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths = s['embed_dims'], s['depths']
        lengths = {k: len(s[k]) for k in ('embed_dims', 'depths', 'num_heads', 'mlp_ratios',
                                          'sr_ratios')}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'FaViT needs one value per stage in each of {sorted(lengths)}; '
                             f'got lengths {lengths}')
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            embed = OverlapPatchEmbed(in_channels if i == 0 else dims[i - 1], dim,
                                      7 if i == 0 else 3, 4 if i == 0 else 2)
            blocks = [FaViTBlock(dim, s['num_heads'][i], s['sr_ratios'][i], s['mlp_ratios'][i],
                                 rates[i][j], s['window_size'], act_cfg, sr_remainder)
                      for j in range(depth)]
            stages.append(FaViTStage(embed, blocks, dim))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.patch_embed(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            x = stage.norm(x)  # the next stage embeds the normalised map, as the official code
            outs.append(x)
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            pvt_init_(self)
        super().init_weights()
