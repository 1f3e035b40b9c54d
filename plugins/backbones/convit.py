"""ConViT: "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases"
(d'Ascoli, Touvron, Leavitt, Morcos, Biroli, Sagun; ICML 2021, arXiv 2103.10697).

A DeiT whose first ``local_layers`` blocks (10 of 12) replace self-attention by gated positional
self-attention (GPSA, Sec. 3, the toolkit's :class:`GatedPositionalAttention`): each head mixes
content attention with a purely positional attention over relative offsets, initialised to
behave like a convolution. The class token joins only after the GPSA blocks (Sec. 3, "the class
token is concatenated after the last GPSA layer"), so the positional attention sees the patch grid
alone; the remaining blocks are plain multi-head self-attention over the class token and the
patches. An absolute position embedding is added to the patch tokens after the 16x16 patch
embedding.

Any H, W (timm and the official code take only the 224x224 square they were built for): the
image is zero-padded to a multiple of 16; GPSA takes its relative offsets from the real
``H/16 x W/16`` grid (timm's ``int(N ** .5)`` is wrong for a non-square grid); the position
embedding is interpolated bicubically from the pre-training grid (14x14) to the actual one, as
DeiT / ConViT do for fine-tuning at another resolution. Dense outputs are the patch tokens (the
class token is dropped), stride 16.

Isotropic stages: the blocks are split into four consecutive groups of ``depth / 4`` (3 for every
preset); stage ``i`` is group ``i`` at stride 16, so ``out_indices=(0, 1, 2, 3)`` returns the
patch tokens after blocks 3, 6, 9 and 12. Stage 0 also holds the patch embedding and the position
embedding, the stage where the class token joins holds it (stage 3: it joins before block 11),
and the last stage holds the final LayerNorm (timm's ``norm``), applied to the last stage's map
only (the other maps are the raw block outputs, as timm's ``forward_intermediates``).
``frozen_stages=k`` freezes the patch / position embedding and the first ``3 k`` blocks.
Detection and segmentation build their pyramid with :class:`SimpleFeaturePyramid` from the last
map (``out_indices=(3, )``).

Parity with timm 1.0.31 (``convit_tiny/small/base``) with the same weights through the ``convit``
converter (fp32, eval, random LayerNorm affines, random gating / positional weights): max abs
difference over the four stages (batch 2) at 224x224: 2.4e-6 (Ti), 2.4e-6 (S), 3.8e-6 (B), with
activations up to 6-9. At non-square sizes (timm cannot run them) the reference is timm's blocks
with the dense N x N relative offsets of the real grid and the bicubically resized position
embedding, on the zero-padded image: 97x131 (7x9 tokens) 1.9e-6 / 2.2e-6 / 3.8e-6, 64x208 (4x13)
1.7e-6 / 2.2e-6 / 3.6e-6; the same reference with the grid transposed (9x7) differs by 0.6-1.7,
so the offsets are checked. Re-checked by tests/backbones/test_convit.py whenever timm is
installed.
"""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.gated_positional import GatedPositionalAttention
from ..ops.global_attention import global_attention
from ..ops.utils import to_pair
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import TokenMlp, resize_grid_embedding

NUM_STAGES = 4  # groups of blocks returned as stages (all at stride 16)


class TokenSelfAttention(nn.Module):
    """ConViT's plain multi-head self-attention (MHSA) on tokens ``(B, N, C)``: fused ``qkv``
    projection, softmax attention, ``proj``."""

    def __init__(self, dim, num_heads, qkv_bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def attention_macs(self, x):
        """``q k^T`` and ``A v``: ``2 N^2 C`` per image (see ``plugins.utils.flops``)."""
        B, N, C = x.shape
        return 2 * B * N * N * C

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = global_attention(q, k, v)  # B heads N d
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class ConViTBlock(nn.Module):
    """Pre-norm transformer block on tokens: ``x + Attn(LN(x))``, ``x + MLP(LN(x))``; ``Attn`` is
    GPSA on the patch grid (``use_gpsa``) or MHSA on the class token and the patches. LayerNorm
    epsilon 1e-6, as the official models."""

    def __init__(self, dim, num_heads, use_gpsa, mlp_ratio=4., qkv_bias=False,
                 locality_strength=1., drop_path=0., act_cfg=dict(type='GELU')):
        super().__init__()
        self.use_gpsa = use_gpsa
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if use_gpsa:
            self.attn = GatedPositionalAttention(dim, num_heads, qkv_bias=qkv_bias,
                                                 locality_strength=locality_strength)
        else:
            self.attn = TokenSelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, grid):
        y = self.norm1(x)
        if self.use_gpsa:  # patch tokens only: B (H W) C -> B C H W for the mixer and back
            B, N, C = y.shape
            y = self.attn(y.transpose(1, 2).reshape(B, C, *grid)).flatten(2).transpose(1, 2)
        else:
            y = self.attn(y)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """16x16 stride-16 convolution (key ``proj``); the input is a multiple of 16 (padded)."""

    def __init__(self, in_channels, dim, patch_size=16):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)

    def forward(self, x):
        return self.proj(x)


class IsotropicStage(nn.Module):
    """A group of blocks; stage 0 also holds ``patch_embed`` and ``pos_embed``, the stage where
    the class token joins holds ``cls_token``, the last one the final ``norm`` (else None)."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.patch_embed = self.norm = None
        self.register_parameter('pos_embed', None)
        self.register_parameter('cls_token', None)


@MODELS.register_module()
class ConViT(AttentionBackbone):
    """ConViT backbone, presets Ti / S / B (5,710,512 / 27,777,322 / 86,540,040 parameters with
    the ImageNet classifier, as timm's ``convit_tiny/small/base``).

    Example::

        backbone=dict(type='ConViT', arch='small', out_indices=(3, ), drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='convit_small.pth'))
        neck=dict(type='SimpleFeaturePyramid', in_channels=[432], out_channels=256, num_outs=5)

    Args:
        arch: 'tiny' | 'small' | 'base' (aliases 'ti', 's', 'b') or a dict with ``embed_dims``
            (48 per head in the presets), ``depth`` (a multiple of 4: four stages), ``num_heads``
            (a square number: GPSA's locality init covers a ``sqrt(heads)^2`` kernel),
            ``local_layers`` (GPSA blocks before the class token joins) and ``pretrain_size``
            (the image size, a side or (H, W), that the position embedding was trained at).
        mlp_ratio: hidden width of the MLPs (4).
        qkv_bias: bias of the attention projections (False, as ConViT).
        locality_strength: alpha of GPSA's locality init (1).
        out_norm: the final LayerNorm on the last stage's map (True, timm's ``norm``); False
            returns the raw block outputs everywhere.
        act_cfg: activation of the MLPs (GELU).
        Others: see :class:`AttentionBackbone`; ``frozen_stages`` counts groups of blocks, the
        first one with the embeddings.
    """
    arch_zoo = {
        'tiny': dict(embed_dims=192, depth=12, num_heads=4, local_layers=10, pretrain_size=224),
        'small': dict(embed_dims=432, depth=12, num_heads=9, local_layers=10, pretrain_size=224),
        'base': dict(embed_dims=768, depth=12, num_heads=16, local_layers=10, pretrain_size=224),
    }
    arch_zoo.update(ti=arch_zoo['tiny'], s=arch_zoo['small'], b=arch_zoo['base'])
    size_divisor = 16
    converter = 'convit'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, mlp_ratio=4.,
                 qkv_bias=False, locality_strength=1., out_norm=True, act_cfg=dict(type='GELU'),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dim, depth, heads, local = (s['embed_dims'], s['depth'], s['num_heads'],
                                    s['local_layers'])
        if depth % NUM_STAGES or depth < NUM_STAGES:
            raise ValueError(f'ConViT arch: depth ({depth}) must be a positive multiple of '
                             f'{NUM_STAGES} (the blocks are split into {NUM_STAGES} stages)')
        if not 0 <= local <= depth:
            raise ValueError(f'ConViT arch: local_layers ({local}) must be in 0..depth ({depth})')
        if dim % heads:
            raise ValueError(f'ConViT arch: embed_dims ({dim}) must be divisible by num_heads '
                             f'({heads})')
        self.local_layers = local
        self.pretrain_grid = tuple(side // 16 for side in to_pair(s['pretrain_size'],
                                                                  'pretrain_size'))
        rates = self.drop_path_rates([depth])[0]
        per = depth // NUM_STAGES
        blocks = [ConViTBlock(dim, heads, i < local, mlp_ratio, qkv_bias, locality_strength,
                              rates[i], act_cfg) for i in range(depth)]
        self.stages = nn.ModuleList(IsotropicStage(blocks[i * per:(i + 1) * per])
                                    for i in range(NUM_STAGES))
        first = self.stages[0]
        first.patch_embed = PatchEmbed(in_channels, dim)
        first.pos_embed = nn.Parameter(torch.zeros(1, self.pretrain_grid[0] *
                                                   self.pretrain_grid[1], dim))
        trunc_normal_(first.pos_embed, std=.02)
        self.cls_stage = local // per  # the class token joins before block `local`
        if local < depth:
            self.stages[self.cls_stage].cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            trunc_normal_(self.stages[self.cls_stage].cls_token, std=.02)
        self.out_norm = out_norm
        if out_norm and self.is_returned(NUM_STAGES - 1, NUM_STAGES):
            self.stages[-1].norm = nn.LayerNorm(dim, eps=1e-6)
        self.stage_channels = [dim] * NUM_STAGES
        self.stage_strides = [16] * NUM_STAGES
        self._check_indices()

    def position_embedding(self, grid):
        """The position embedding on the actual ``H/16 x W/16`` grid (bicubic from the
        pre-training grid): ``(1, H W / 256, C)``."""
        return resize_grid_embedding(self.stages[0].pos_embed, self.pretrain_grid, grid)

    def forward_stages(self, x):
        x = self.stages[0].patch_embed(x)
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2) + self.position_embedding((H, W))  # B (H W) C
        outs, index, prefix = [], 0, 0
        for stage in self.stages:
            for block in stage.blocks:
                if index == self.local_layers:  # the class token joins (Sec. 3)
                    cls = self.stages[self.cls_stage].cls_token.expand(B, -1, -1)
                    x = torch.cat([cls, x], dim=1)
                    prefix = 1
                x = self.run_block(block, x, (H, W))
                index += 1
            out = x[:, prefix:]
            if stage.norm is not None:
                out = stage.norm(out)
            outs.append(out.transpose(1, 2).reshape(B, C, H, W))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # timm's / the official initialisation, then GPSA's local init
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            for m in self.modules():
                if isinstance(m, GatedPositionalAttention):
                    m.local_init()
        super().init_weights()
