"""NAT and DiNAT: "Neighborhood Attention Transformer" (Hassani, Walton, Li, Li, Shi; CVPR 2023,
arXiv 2204.07143) and "Dilated Neighborhood Attention Transformer" (Hassani, Shi; arXiv 2209.15001).

Both are one architecture: a tokenizer of two 3x3 stride-2 convs (NAT Sec. 3.2, "overlapping"),
four levels of pre-norm blocks ``x + NA(LN(x))``, ``x + MLP(LN(x))`` (with layer scale in the larger
presets), and 3x3 stride-2 conv downsamplers between levels. Each token attends to its 7x7
neighbourhood with a relative position bias (NAT Eq. 2-3). DiNAT dilates the neighbourhood in every
other block (DiNAT Sec. 3.2, Table 1): a per-layer list of dilations, larger for the larger inputs
of detection and segmentation. Any H, W: where a map is shorter than ``kernel x dilation``, the
normalised map is zero-padded to it before ``qkv`` as in the NATTEN versions the releases were
trained with (0.14 / 0.15), so the features equal the official models' (with DiNAT's detection
dilations this concerns every input side below ~781 px); ``small_map='clamp'`` clamps the
dilation to what fits instead (see ``NeighborhoodAttention2d``). Never an error.
"""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.neighborhood import NeighborhoodAttention2d
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import PreNormBlock, TokenMlp


def _alternate(pattern, depth):
    """``pattern`` repeated to ``depth`` layers (the official lists repeat a short period)."""
    return [pattern[i % len(pattern)] for i in range(depth)]


def dinat_dilations(setting: str, depths):
    """The official per-layer dilations of DiNAT for ``depths`` (6 or 18 blocks in level 3).

    ``'classification'``: the ImageNet models at 224 (DiNAT Table 1); ``'detection'``: the COCO
    configs (inputs near 800x1333); ``'segmentation'``: the ADE20K configs (512x512 crops).
    """
    periods = {
        'classification': ([1, 8], [1, 4], [1, 2], [1, 1]),
        'detection': ([1, 28], [1, 7, 1, 14], [1, 3, 1, 5, 1, 7], [1, 3]),
        'segmentation': ([1, 16], [1, 4, 1, 8], [1, 2, 1, 3, 1, 4], [1, 2]),
    }
    if setting not in periods:
        raise ValueError(f'DiNAT dilations {setting!r} is not one of {sorted(periods)} '
                         f'(or give a per-level list of per-layer dilations)')
    return [_alternate(p, d) for p, d in zip(periods[setting], depths)]


class ConvTokenizer(nn.Module):
    """Two 3x3 stride-2 convs, then LayerNorm (NAT Sec. 3.2); NCHW in and out."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, dim // 2, 3, 2, 1),
                                  nn.Conv2d(dim // 2, dim, 3, 2, 1))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvDownsampler(nn.Module):
    """3x3 stride-2 conv (no bias) doubling the channels, then LayerNorm; NCHW in and out."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.reduction = nn.Conv2d(dim, out_dim, 3, 2, 1, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x):
        return self.norm(self.reduction(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NATBlock(PreNormBlock):
    """``x + gamma1 * NA(LN(x))``, ``x + gamma2 * MLP(LN(x))`` (NAT Fig. 4); NCHW in and out."""

    def __init__(self, dim, num_heads, kernel_size, dilation, mlp_ratio, drop_path,
                 layer_scale=None, small_map='pad'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = NeighborhoodAttention2d(dim, num_heads, kernel_size, dilation=dilation,
                                            small_map=small_map)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if layer_scale:
            self.gamma1 = nn.Parameter(layer_scale * torch.ones(dim))
            self.gamma2 = nn.Parameter(layer_scale * torch.ones(dim))


class NATStage(nn.Module):
    """Tokenizer (stage 0) or downsampler, blocks, and the output LayerNorm (on a returned map
    only)."""

    def __init__(self, downsample, blocks, dim, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim) if out_norm else nn.Identity()


@MODELS.register_module()
class NAT(AttentionBackbone):
    """Neighborhood Attention Transformer, presets Mini/Tiny/Small/Base (20M / 28M / 51M / 90M
    with the ImageNet classifier).

    Example::

        backbone=dict(type='NAT', arch='mini', drop_path_rate=0.2,
                      init_cfg=dict(type='Pretrained', checkpoint='nat_mini.pth'))

    Args:
        arch: 'mini' | 'tiny' | 'small' | 'base' or a dict with ``embed_dim``, ``depths``,
            ``num_heads``, ``mlp_ratio``, ``layer_scale``.
        kernel_size: neighbourhood side (7).
        dilations: ``None`` (NAT: all 1), ``'classification'`` / ``'detection'`` /
            ``'segmentation'`` (the official DiNAT settings, see :func:`dinat_dilations`), or a
            per-level list of per-layer dilations.
        small_map: ``'pad'`` (the official releases) or ``'clamp'``: how a map shorter than
            ``kernel x dilation`` is attended (see ``NeighborhoodAttention2d``).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'mini': dict(embed_dim=64, depths=[3, 4, 6, 5], num_heads=[2, 4, 8, 16], mlp_ratio=3.,
                     layer_scale=None),
        'tiny': dict(embed_dim=64, depths=[3, 4, 18, 5], num_heads=[2, 4, 8, 16], mlp_ratio=3.,
                     layer_scale=None),
        'small': dict(embed_dim=96, depths=[3, 4, 18, 5], num_heads=[3, 6, 12, 24],
                      mlp_ratio=2., layer_scale=1e-5),
        'base': dict(embed_dim=128, depths=[3, 4, 18, 5], num_heads=[4, 8, 16, 32],
                     mlp_ratio=2., layer_scale=1e-5),
    }
    arch_zoo.update(m=arch_zoo['mini'], t=arch_zoo['tiny'], s=arch_zoo['small'],
                    b=arch_zoo['base'])
    converter = 'nat'
    default_dilations = None

    def __init__(self, arch='mini', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, kernel_size=7,
                 dilations='default', small_map='pad', init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        depths = s['depths']
        dims = [s['embed_dim'] * 2**i for i in range(len(depths))]
        if dilations == 'default':
            dilations = self.default_dilations
        if dilations is None:
            dilations = [[1] * d for d in depths]
        elif isinstance(dilations, str):
            dilations = dinat_dilations(dilations, depths)
        if [len(d) for d in dilations] != list(depths):
            raise ValueError(f'dilations must give one value per layer: depths {list(depths)}, '
                             f'got lengths {[len(d) for d in dilations]}')
        self.dilations = [list(d) for d in dilations]
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            downsample = (ConvTokenizer(in_channels, dim) if i == 0 else
                          ConvDownsampler(dims[i - 1], dim))
            blocks = [NATBlock(dim, s['num_heads'][i], kernel_size, self.dilations[i][j],
                               s['mlp_ratio'], rates[i][j], s['layer_scale'], small_map)
                      for j in range(depth)]
            stages.append(NATStage(downsample, blocks, dim, self.is_returned(i, len(depths))))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = dims
        self.stage_strides = [4 * 2**i for i in range(len(depths))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(stage.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation (the rpb keeps its own)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()


@MODELS.register_module()
class DiNAT(NAT):
    """Dilated Neighborhood Attention Transformer: NAT with per-layer dilations, presets
    Mini/Tiny/Small/Base (20M / 28M / 51M / 90M with the ImageNet classifier).

    ``dilations`` defaults to ``'classification'`` (the ImageNet models); the official detection and
    segmentation configs use ``'detection'`` and ``'segmentation'``. Unlike NAT-Small, the official
    DiNAT-Small (``dinat_small``, and its detection / segmentation backbones) has no layer scale;
    Base has it, as NAT-Base.
    """
    default_dilations = 'classification'
    arch_zoo = {**NAT.arch_zoo, 'small': dict(NAT.arch_zoo['small'], layer_scale=None)}
    arch_zoo['s'] = arch_zoo['small']
