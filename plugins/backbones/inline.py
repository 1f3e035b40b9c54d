"""InLine-PVT and InLine-Swin: "Bridging the Divide: Reconsidering Softmax and Linear Attention"
(Han et al., NeurIPS 2024, arXiv 2412.06590).

The paper's hierarchical models replace the softmax attention of PVT and Swin with InLine
attention (:class:`~plugins.mixers.inline_attention.InLineAttention`): injective linear attention
(Eq. 5, the weights of a query are its scores minus their mean plus ``1/N``) plus the local residual
(a 3x3 depth-wise convolution of V whose kernel is predicted from the mean token), linear in tokens.

* **InLine-PVT** (T / S / M / L): PVT v1 with InLine attention over the whole map in every block
  (the official ``attn_type='IIII'``, ``la_sr_ratios=1111``: no spatial reduction of K/V); patch
  embeddings (4x4, then 2x2 convolutions + LayerNorm) and a learned position embedding per stage,
  bilinearly resized to the map (fixed 224-pretraining grids, interpolated, never asserted).
* **InLine-Swin** (T / S / B): Swin with InLine attention in the first blocks of each stage and
  Swin's 7x7 (shifted) window softmax attention with relative position bias in the rest (the
  official ``attn_type`` IIIS / IISS / IIMS2: T softmax in stage 4 only, S in stages 3-4, B in
  stages 3 (after two InLine blocks) and 4). The official InLine blocks use 56x56 windows, i.e. the
  whole map of every stage at 224; here they attend over the whole map at any size (linear cost).
  Softmax blocks shift on odd positions in their stage, except where the map fits in one window
  (Swin's rule; stage 4 at 224). A LayerNorm on every returned map (Swin's dense-task backbone).

Any H, W: the input is zero-padded to a multiple of 32 (the patch embeddings / mergings need even
maps) and the outputs are cropped to ``ceil(H / stride)``.

Parity with the official code (``models/inline_pvt.py`` / ``models/inline_swin.py`` of
LeapLabTHU/InLine run beside these with the same weights converted by the ``inline`` converter,
fp32, eval, random weights, 224x224, the four stage outputs before the output norms), max abs
diff: InLine-PVT T / S / M / L 7.9e-6 / 8.2e-6 / 9.4e-6 / 7.6e-6, InLine-Swin T / S / B
2.3e-6 / 2.8e-6 / 4.1e-6. The parameter counts equal the official code's.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.inline_attention import InLineAttention
from ..mixers.window import ShiftedWindowAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, TokenMlp


class InLineTransformerBlock(nn.Module):
    """Pre-norm transformer block on channels-last maps ``(B, H, W, C)``:
    ``x = x + Attn(LN(x)); x = x + MLP(LN(x))``. ``attn`` is InLine attention over the whole map
    or (``window_size`` set) Swin's window softmax attention, shifted by ``shift_size``."""

    def __init__(self, dim, num_heads, mlp_ratio=4., drop_path=0., norm_eps=1e-5,
                 window_size=None, shift_size=0, kernel_func='identity'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        if window_size is None:
            self.attn = InLineAttention(dim, num_heads, qkv_bias=True, kernel_func=kernel_func)
        else:
            self.attn = ShiftedWindowAttention(dim, num_heads, window_size, shift_size,
                                               rel_pos_bias=True)
        self.window_size = window_size
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attend(self, x):
        x = x.permute(0, 3, 1, 2)  # B H W C -> B C H W
        if self.window_size is not None and max(x.shape[2:]) <= self.window_size:
            return self.attn(x, shift_size=0).permute(0, 2, 3, 1)  # one window: no shift
        return self.attn(x).permute(0, 2, 3, 1)

    def forward(self, x):
        x = x + self.drop_path(self._attend(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PVTPatchEmbed(nn.Module):
    """PVT's patch embedding: a ``p x p`` stride-``p`` convolution, then LayerNorm (NCHW in,
    channels-last out)."""

    def __init__(self, in_channels, dim, patch_size):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class InLinePVTStage(nn.Module):
    """Patch embedding, the position embedding of the pretraining grid (``(1, gh * gw, C)``, the
    official layout), bilinearly resized to the map when it differs, and the blocks."""

    def __init__(self, in_channels, dim, patch_size, grid, blocks):
        super().__init__()
        self.patch_embed = PVTPatchEmbed(in_channels, dim, patch_size)
        self.grid = grid
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, dim))
        self.blocks = nn.ModuleList(blocks)

    def position_embedding(self, h, w):
        """``(1, h, w, C)``: the learned grid, resized bilinearly (the official ``_get_pos_embed``,
        ``align_corners=False``) when the map is not the pretraining grid."""
        pos = self.pos_embed.view(1, self.grid, self.grid, -1)
        if (h, w) == (self.grid, self.grid):
            return pos
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode='bilinear',
                            align_corners=False)
        return pos.permute(0, 2, 3, 1)


@MODELS.register_module()
class InLinePVT(AttentionBackbone):
    """InLine-PVT backbone, presets T / S / M / L (12.0M / 21.6M / 37.6M / 51.2M with the ImageNet
    classifier, as the official code builds them).

    Example::

        backbone=dict(type='InLinePVT', arch='s', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='inline_pvt_s.pth'))

    Args:
        arch: 'tiny' | 'small' | 'medium' | 'large' (aliases 't', 's', 'm', 'l') or a dict with
            ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``.
        pretrain_size: image size of the position-embedding grids (224).
        kernel_func: InLine's feature map phi ('identity', the official default).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        name: dict(embed_dims=[64, 128, 320, 512], num_heads=[2, 4, 10, 16],
                   mlp_ratios=[8, 8, 4, 4], depths=depths)
        for name, depths in [('tiny', [2, 2, 2, 2]), ('small', [3, 4, 6, 3]),
                             ('medium', [3, 4, 18, 3]), ('large', [3, 8, 27, 3])]
    }
    arch_zoo.update(t=arch_zoo['tiny'], s=arch_zoo['small'], m=arch_zoo['medium'],
                    l=arch_zoo['large'])
    size_divisor = 32
    converter = 'inline'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, pretrain_size=224,
                 kernel_func='identity', init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths, heads, ratios = (s['embed_dims'], s['depths'], s['num_heads'],
                                       s['mlp_ratios'])
        if not len(dims) == len(depths) == len(heads) == len(ratios):
            raise ValueError(f'InLinePVT arch: embed_dims {dims}, depths {depths}, num_heads '
                             f'{heads} and mlp_ratios {ratios} must have one entry per stage')
        rates = self.drop_path_rates(depths)
        stages, stride = [], 1
        for i, dim in enumerate(dims):
            patch = 4 if i == 0 else 2
            stride *= patch
            blocks = [InLineTransformerBlock(dim, heads[i], ratios[i], rates[i][j], norm_eps=1e-6,
                                             kernel_func=kernel_func)
                      for j in range(depths[i])]
            stages.append(InLinePVTStage(in_channels if i == 0 else dims[i - 1], dim, patch,
                                         pretrain_size // stride, blocks))
            self.stage_strides.append(stride)
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.patch_embed(x)                                       # B H W C
            x = x + stage.position_embedding(*x.shape[1:3])
            for block in stage.blocks:
                x = self.run_block(block, x)
            x = x.permute(0, 3, 1, 2)                                      # B C H W
            outs.append(x)
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            _init_transformer(self)
            for stage in self.stages:
                trunc_normal_(stage.pos_embed, std=.02)
        super().init_weights()


class SwinPatchMerging(nn.Module):
    """Swin's patch merging: each 2x2 neighbourhood concatenated (order (0,0), (1,0), (0,1),
    (1,1)), LayerNorm over the 4C channels, linear reduction to ``dim`` (no bias)."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, dim, bias=False)

    def forward(self, x):  # B H W C, H and W even
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)
        return self.reduction(self.norm(x))


class SwinPatchEmbed(PVTPatchEmbed):
    """Swin's 4x4 patch embedding with its LayerNorm (NCHW in, channels-last out)."""

    def __init__(self, in_channels, dim):
        super().__init__(in_channels, dim, 4)


class InLineSwinStage(nn.Module):
    """Down-sampling (the patch embedding for stage 0, a patch merging after), the blocks, and
    the output LayerNorm."""

    def __init__(self, downsample, blocks, dim, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim) if out_norm else nn.Identity()


@MODELS.register_module()
class InLineSwin(AttentionBackbone):
    """InLine-Swin backbone, presets T / S / B (29.2M / 49.8M / 88.4M with the ImageNet classifier,
    as the official code builds them; the README rounds to 30M / 50M / 88M).

    Example::

        backbone=dict(type='InLineSwin', arch='t', drop_path_rate=0.2,
                      init_cfg=dict(type='Pretrained', checkpoint='inline_swin_t.pth'))

    Args:
        arch: 'tiny' | 'small' | 'base' (aliases 't', 's', 'b') or a dict with ``embed_dims``,
            ``depths``, ``num_heads`` and ``inline_blocks`` (per stage, how many of its first
            blocks use InLine attention; the rest use window softmax attention).
        window_size: window side of the softmax blocks (7: the official ``max(7, 56 // 8)``).
        mlp_ratio: hidden width of the MLPs (4).
        kernel_func: InLine's feature map phi ('identity', the official default).
        out_norm: a LayerNorm on every returned map (Swin's dense-task backbone); False returns
            the raw stage outputs.
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'tiny': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2],
                     num_heads=[3, 6, 12, 24], inline_blocks=[2, 2, 6, 0]),
        'small': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2],
                      num_heads=[3, 6, 12, 24], inline_blocks=[2, 2, 0, 0]),
        'base': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2],
                     num_heads=[4, 8, 16, 32], inline_blocks=[2, 2, 2, 0]),
    }
    arch_zoo.update(t=arch_zoo['tiny'], s=arch_zoo['small'], b=arch_zoo['base'])
    size_divisor = 32
    converter = 'inline'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, window_size=7, mlp_ratio=4.,
                 kernel_func='identity', out_norm=True, init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths, heads, inline = (s['embed_dims'], s['depths'], s['num_heads'],
                                       s['inline_blocks'])
        if not len(dims) == len(depths) == len(heads) == len(inline):
            raise ValueError(f'InLineSwin arch: embed_dims {dims}, depths {depths}, num_heads '
                             f'{heads} and inline_blocks {inline} must have one entry per stage')
        if any(not 0 <= n <= d for n, d in zip(inline, depths)):
            raise ValueError(f'InLineSwin arch: inline_blocks {inline} must lie within 0 and the '
                             f'depths {depths}')
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            downsample = (SwinPatchEmbed(in_channels, dim) if i == 0
                          else SwinPatchMerging(dims[i - 1], dim))
            blocks = [InLineTransformerBlock(
                dim, heads[i], mlp_ratio, rates[i][j], kernel_func=kernel_func,
                window_size=None if j < inline[i] else window_size,
                shift_size=0 if j % 2 == 0 else window_size // 2) for j in range(depth)]
            norm = out_norm and self.is_returned(i, len(dims))
            stages.append(InLineSwinStage(downsample, blocks, dim, norm))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = x.permute(0, 2, 3, 1)                                  # B C H W -> B H W C
            x = stage.downsample(x)                                        # B H W C
            for block in stage.blocks:
                x = self.run_block(block, x)
            x = x.permute(0, 3, 1, 2)
            outs.append(stage.norm(x))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            _init_transformer(self)
        super().init_weights()


def _init_transformer(model):
    """The official ``_init_weights``: truncated normal (std 0.02) linear weights, zero biases,
    unit LayerNorms (convolutions keep PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
