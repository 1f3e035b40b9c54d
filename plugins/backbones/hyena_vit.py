"""Hyena ViT: "Multi-Dimensional Hyena for Spatial Inductive Bias" (Zimerman & Wolf, AISTATS 2024,
arXiv 2309.13600).

The paper's data-efficient ViT: a DeiT whose self-attention is replaced by the 2-D Hyena operator
(:class:`~plugins.mixers.hyena.HyenaMixer2d`: the Hyena recurrence with long implicit 2-D filters,
FFT convolutions), in every block or (the hybrid) in the first blocks only, attention after them
(the paper's "Hyena N-D for the first layers, then attention"). As the official code
(Itamarzimm/HyenaND, ``pytorch-image-models/timm/models/vision_transformer.py`` and
``layers/hyena2d.py``) runs it in its README: 16x16 patches, a learned position embedding and no
class token (the operator reshapes the token sequence to a square grid, so a class token cannot
join it; ``use_cls_token`` is off), Hyena order 2 with a 64-wide filter MLP, the joint 2-D filter
(``--hyena2d_filter``: one MLP reads the positional features of both axes), the standard decay
window, and ``--directional_mode seq``: even blocks flip the map before the long convolution (the
filter runs from the bottom-right corner), odd blocks do not. The official layouts of Hyena and
attention blocks (``--method``, ``d = depth // 2``): 'hyena2d' (all Hyena), 'hyena2dattn' (Hyena in
blocks ``0..d``, attention after: the README's hybrid), 'attnhyena2d' (the reverse), 'onebyone'
(Hyena in even blocks).

Any H, W (the official model asserts a square map equal to its build size): the implicit filters
are evaluated on the actual grid (the mixer resamples their positional features to H and W), the
position embedding is resized bicubically from the 14x14 pre-training grid, and the input is
zero-padded to a multiple of 16 (outputs cropped to ``ceil(H / 16)``).

Stages of an isotropic model: the blocks form four groups of equal stride 16 (the presets' 12
blocks: 3 + 3 + 3 + 3). Stage 0 holds the patch embedding and the position embedding with the
first group, so ``frozen_stages=k`` freezes the embedding and the first ``k`` groups;
``out_indices`` selects groups (default: the last, which the simple feature pyramid reads). The
last group ends with the official final LayerNorm (``norm``); earlier groups return their raw
block outputs. For dense tasks the pyramid comes from the ``SimpleFeaturePyramid`` neck.

Parity with the official code (its DeiT shell on its vendored timm 0.4.12, built outside the
repository; the same random weights through the ``hyena_vit`` converter, LayerNorm affines and all
biases randomised, the Hyena projections and filter MLPs at std ``2 / sqrt(fan_in)`` so the long
convolutions move the output by ~4; fp32, eval, the final normalised token map, |x| <= 5.3): the
all-Hyena tiny / small / base are bitwise equal at 224x224 and at 160x160 (official built for
160: it runs only square maps of its build size); the hybrids differ by 9.5e-7 / 1.7e-6 / 1.7e-6
(tiny / small / base, 224; tiny at 160: 1.2e-6), the attention's fused kernel against the
official explicit softmax.

FLOPs at 224 (mmengine's analyser): 1.14 / 1.11 / 4.33 / 4.29 / 16.97 / 16.89 G (tiny,
tiny-hybrid, small, small-hybrid, base, base-hybrid). The analyser does not count the FFTs; by
a ``2.5 N log2 N`` count of the 28x28 transforms they add about 0.07 G for tiny (6%).
"""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.global_attention import GlobalSelfAttention
from ..mixers.hyena import HyenaMixer2d
from ..registry import MODELS
from ..utils.converters import get_converter
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, PreNormBlock, TokenMlp

#: the official ``--method`` choices: which blocks mix with Hyena (the others attend)
LAYOUTS = {
    'hyena2d': lambda i, depth: True,
    'hyena2dattn': lambda i, depth: i <= depth // 2,
    'attnhyena2d': lambda i, depth: i > depth // 2,
    'onebyone': lambda i, depth: i % 2 == 0,
}


class HyenaViTBlock(PreNormBlock):
    """DeiT's pre-norm block with a 2-D Hyena operator or multi-head self-attention as mixer:
    ``x + Mixer(LN(x))``, then ``x + MLP(LN(x))`` (LayerNorm eps 1e-6, GELU MLP)."""

    def __init__(self, dim, mixer, mlp_ratio=4., drop_path=0.):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = mixer
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution (DeiT's ``patch_embed.proj``)."""

    def __init__(self, in_channels, dim, patch_size):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)

    def forward(self, x):
        return self.proj(x)


class HyenaViTStage(nn.Module):
    """A group of blocks; stage 0 also holds the patch and position embeddings, the last stage the
    final LayerNorm (``norm``, identity when its map is not returned)."""

    def __init__(self, blocks, patch_embed=None, pos_embed=None, norm=None):
        super().__init__()
        self.patch_embed = patch_embed
        if pos_embed is not None:
            self.pos_embed = pos_embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm if norm is not None else nn.Identity()


@MODELS.register_module()
class HyenaViT(AttentionBackbone):
    """Hyena ViT (Hyena-DeiT) backbone: all-Hyena presets 'tiny' / 'small' / 'base' and the hybrids
    'tiny-hybrid' / 'small-hybrid' / 'base-hybrid' (Hyena, then attention), on the DeiT-T / S / B
    shells (6.04M / 22.59M / 87.55M and 5.91M / 22.37M / 87.14M parameters with the ImageNet
    classifier, as the official code builds them).

    Example::

        backbone=dict(type='HyenaViT', arch='tiny', out_indices=(3, ), drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='hyena_deit_tiny.pth')),
        neck=dict(type='SimpleFeaturePyramid', in_channels=192, out_channels=256, num_outs=5)

    Args:
        arch: a preset name or a dict with ``embed_dims`` (int), ``depths`` (blocks in each of
            the four groups), ``num_heads`` (of the attention blocks) and ``layout`` (one of
            'hyena2d', 'hyena2dattn', 'attnhyena2d', 'onebyone', the official ``--method``).
        pretrain_img_size: the pre-training image side (224): its grid (14) is the length of the
            filters' positional features and the size of the position embedding.
        patch_size: side of the patches (16).
        mlp_ratio, qkv_bias: of the blocks (4, True).
        hyena_order, filter_order, filter_mode, window_mode, directional_mode: of the Hyena
            operators (official README: 2, 64, '2d', 'standard', 'seq'; with 'seq' even blocks
            use it and odd blocks 'standard', as the official code).
        out_indices: groups whose maps are returned (default: the last, stride 16).
        Others: see :class:`AttentionBackbone`; ``frozen_stages`` counts the embeddings with the
        first group, ``drop_path_rate`` rises linearly over all blocks (DeiT).
    """
    arch_zoo = {
        'tiny': dict(embed_dims=192, depths=[3, 3, 3, 3], num_heads=3, layout='hyena2d'),
        'tiny-hybrid': dict(embed_dims=192, depths=[3, 3, 3, 3], num_heads=3,
                            layout='hyena2dattn'),
        'small': dict(embed_dims=384, depths=[3, 3, 3, 3], num_heads=6, layout='hyena2d'),
        'small-hybrid': dict(embed_dims=384, depths=[3, 3, 3, 3], num_heads=6,
                             layout='hyena2dattn'),
        'base': dict(embed_dims=768, depths=[3, 3, 3, 3], num_heads=12, layout='hyena2d'),
        'base-hybrid': dict(embed_dims=768, depths=[3, 3, 3, 3], num_heads=12,
                            layout='hyena2dattn'),
    }
    converter = 'hyena_vit'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(3, ), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, pretrain_img_size=224,
                 patch_size=16, mlp_ratio=4., qkv_bias=True, hyena_order=2, filter_order=64,
                 filter_mode='2d', window_mode='standard', directional_mode='seq',
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dim, depths, layout = s['embed_dims'], list(s['depths']), s['layout']
        if layout not in LAYOUTS:
            raise ValueError(f'HyenaViT layout must be one of {sorted(LAYOUTS)} (the official '
                             f'--method), got {layout!r}')
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f'HyenaViT depths must give four groups of at least one block, '
                             f'got {depths}')
        if pretrain_img_size % patch_size:
            raise ValueError(f'HyenaViT: pretrain_img_size ({pretrain_img_size}) must be a '
                             f'multiple of patch_size ({patch_size})')
        self.grid = pretrain_img_size // patch_size
        self.depths = depths
        self.size_divisor = patch_size
        self.stage_channels = [dim] * 4
        self.stage_strides = [patch_size] * 4
        self._check_indices()
        blocks = self._build_blocks(dim, s['num_heads'], sum(depths), layout, mlp_ratio, qkv_bias,
                                    dict(order=hyena_order, filter_order=filter_order,
                                         filter_mode=filter_mode, window_mode=window_mode),
                                    directional_mode)
        stages, start = [], 0
        for i, depth in enumerate(depths):
            first, last = i == 0, i == len(depths) - 1
            norm = (ChannelLayerNorm(dim, eps=1e-6)
                    if last and self.is_returned(i, len(depths)) else None)
            stages.append(HyenaViTStage(
                blocks[start:start + depth],
                patch_embed=PatchEmbed(in_channels, dim, patch_size) if first else None,
                pos_embed=nn.Parameter(torch.zeros(1, self.grid ** 2, dim)) if first else None,
                norm=norm))
            start += depth
        self.stages = nn.ModuleList(stages)

    def _build_blocks(self, dim, num_heads, depth, layout, mlp_ratio, qkv_bias, hyena_cfg,
                      directional_mode) -> List[HyenaViTBlock]:
        rates = self.drop_path_rates([depth])[0]
        blocks = []
        for i in range(depth):
            if LAYOUTS[layout](i, depth):
                mode = directional_mode
                if mode == 'seq':  # official: 'seq' in even blocks, 'standard' in odd ones
                    mode = 'seq' if i % 2 == 0 else 'standard'
                mixer = HyenaMixer2d(dim, l_max=self.grid, directional_mode=mode, **hyena_cfg)
            else:
                mixer = GlobalSelfAttention(dim, num_heads, qkv_bias=qkv_bias)
            blocks.append(HyenaViTBlock(dim, mixer, mlp_ratio, rates[i]))
        return blocks

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The learned embedding of the pre-training grid, resized bicubically to ``h x w``
        (as timm's ``resample_abs_pos_embed``): (1, C, h, w)."""
        pos = self.stages[0].pos_embed
        pos = pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        if (h, w) != (self.grid, self.grid):
            pos = F.interpolate(pos, size=(h, w), mode='bicubic', align_corners=False)
        return pos

    def forward_stages(self, x):
        outs = []
        for i, stage in enumerate(self.stages[:max(self.out_indices) + 1]):
            if i == 0:
                x = stage.patch_embed(x)
                x = x + self.position_embedding(*x.shape[2:])
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(stage.norm(x))
        return outs

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """The official keys (``blocks.i``) grouped by this model's ``depths``."""
        return get_converter(self.converter)(state_dict, depths=self.depths)

    def init_weights(self):
        if self.init_cfg is None:  # the official (timm 0.4.12 ViT) initialisation
            trunc_normal_(self.stages[0].pos_embed, std=.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
