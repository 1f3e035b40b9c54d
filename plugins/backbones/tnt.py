"""Transformer in Transformer: "Transformer in Transformer" (Han, Xiao, Wu, Guo, Xu, Wang;
NeurIPS 2021, arXiv 2103.00112).

The image is cut into 16x16 patches ("visual sentences"); each patch alone goes through a 7x7
stride-4 convolution (zero-padded at the patch border) that gives 4x4 "visual words" of
``inner_dim`` channels (Sec. 3). Every block runs an inner transformer over the 16 words of each
sentence (Eq. 3-4), adds the flattened words, projected, to the sentence embedding (Eq. 5), then
runs the outer transformer over the sentences and a class token (Eq. 6-7). Word and sentence
position embeddings are learned (Sec. 3.1: 1-D, the sentence one on the 14x14 grid + class
token). The pyramid variant is :class:`PyramidTNT` (``pyramid_tnt.py``).

Any H, W (timm and the official code take only the size they were built for): the image is
zero-padded (bottom / right) to a multiple of 16, and the sentence position embedding is
interpolated bicubically from the pre-training grid to the actual one (as DeiT resizes its
position embedding); the word position embedding is per word of a sentence and needs no resizing.

Isotropic stages: the blocks are split into four groups of ``depth / 4`` (3 for both presets),
stage ``i`` = group ``i`` at stride 16 (patch tokens, class token dropped); stage 0 also holds the
word / sentence embeddings with their position embeddings and the class token, the last stage the
final LayerNorm (timm's ``norm``, applied to that stage's map only). ``frozen_stages=k`` freezes
the embeddings and the first ``3 k`` blocks. Detection and segmentation build their pyramid with
:class:`SimpleFeaturePyramid` from the last map (``out_indices=(3, )``).

Parity with timm 1.0.31 (``tnt_s/b_patch16_224``) with the same weights through the ``tnt``
converter (fp32, eval, batch 2, random LayerNorm affines; max abs difference over the four
stages): S 3.8e-6, B 4.8e-6 at 224x224 (activations up to 17-19); at 96x160 and 112x144 (timm
built at that size with the sentence position embedding that ours resizes) S 3.8e-6 / 3.8e-6,
B 6.2e-6 / 3.8e-6. Re-checked by tests/backbones/test_tnt.py (one block per stage) whenever timm
is installed.
"""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..ops.global_attention import global_attention
from ..ops.utils import to_pair
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import TokenMlp, resize_grid_embedding

NUM_STAGES = 4


class TNTAttention(nn.Module):
    """TNT's multi-head self-attention on tokens ``(B, N, C)``: ``qk`` and ``v`` projections (the
    official / timm key names), ``proj``."""

    def __init__(self, dim, num_heads, qkv_bias=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'TNT: dim ({dim}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def attention_macs(self, x):
        """``q k^T`` and ``A v``: ``2 N^2 C`` per sequence (see ``plugins.utils.flops``)."""
        B, N, C = x.shape
        return 2 * B * N * N * C

    def forward(self, x):
        B, N, C = x.shape
        q, k = self.qk(x).view(B, N, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        v = self.v(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        return self.proj(global_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class TNTBlock(nn.Module):
    """Inner transformer on the words of every sentence (``(B N, words, c)``), the words added to
    their sentence (``LN(Linear(LN(flatten(words))))``, Eq. 5), outer transformer on the class
    token and the sentences (``(B, 1 + N, C)``)."""

    def __init__(self, outer_dim, inner_dim, outer_heads, inner_heads, num_words, mlp_ratio=4.,
                 qkv_bias=False, drop_path=0., act_cfg=dict(type='GELU')):
        super().__init__()
        self.inner_norm1 = nn.LayerNorm(inner_dim)
        self.inner_attn = TNTAttention(inner_dim, inner_heads, qkv_bias)
        self.inner_norm2 = nn.LayerNorm(inner_dim)
        self.inner_mlp = TokenMlp(inner_dim, int(inner_dim * mlp_ratio), act_cfg)
        self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
        self.proj = nn.Linear(num_words * inner_dim, outer_dim, bias=False)
        self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.outer_norm1 = nn.LayerNorm(outer_dim)
        self.outer_attn = TNTAttention(outer_dim, outer_heads, qkv_bias)
        self.outer_norm2 = nn.LayerNorm(outer_dim)
        self.outer_mlp = TokenMlp(outer_dim, int(outer_dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, words, sentences):
        words = words + self.drop_path(self.inner_attn(self.inner_norm1(words)))
        words = words + self.drop_path(self.inner_mlp(self.inner_norm2(words)))
        B, N1, _ = sentences.shape
        flat = words.reshape(B, N1 - 1, -1)  # (B N) words c -> B N (words c)
        patches = sentences[:, 1:] + self.proj_norm2(self.proj(self.proj_norm1(flat)))
        sentences = torch.cat([sentences[:, :1], patches], dim=1)
        sentences = sentences + self.drop_path(self.outer_attn(self.outer_norm1(sentences)))
        sentences = sentences + self.drop_path(self.outer_mlp(self.outer_norm2(sentences)))
        return words, sentences


class WordEmbed(nn.Module):
    """TNT's visual words: every ``patch x patch`` patch alone through a 7x7 convolution of stride
    ``inner_stride`` (zero padding 3 at the patch border), ``(B N, words, inner_dim)``."""

    def __init__(self, in_channels, inner_dim, patch_size=16, inner_stride=4):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, inner_dim, 7, inner_stride, 3)

    def forward(self, x):
        B, C, H, W = x.shape
        p = self.patch_size
        grid = (H // p, W // p)
        patches = x.view(B, C, grid[0], p, grid[1], p).permute(0, 2, 4, 1, 3, 5)
        words = self.proj(patches.reshape(-1, C, p, p))  # (B N) c 4 4
        return words.flatten(2).transpose(1, 2), grid


class TNTEmbedding(nn.Module):
    """Words and sentences of the image with their position embeddings (Sec. 3.1): the words
    plus ``inner_pos``; the sentences ``LN(Linear(LN(flatten(words))))`` after the class token,
    plus ``outer_pos`` (its grid part resized to the actual grid). Key names as the official
    top-level ones."""

    def __init__(self, in_channels, outer_dim, inner_dim, patch_size, inner_stride, pretrain_grid):
        super().__init__()
        num_words = (patch_size // inner_stride) ** 2
        self.pretrain_grid = pretrain_grid
        self.patch_embed = WordEmbed(in_channels, inner_dim, patch_size, inner_stride)
        self.inner_pos = nn.Parameter(torch.zeros(1, num_words, inner_dim))
        self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
        self.proj = nn.Linear(num_words * inner_dim, outer_dim)
        self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, outer_dim))
        self.outer_pos = nn.Parameter(
            torch.zeros(1, 1 + pretrain_grid[0] * pretrain_grid[1], outer_dim))
        for p in (self.cls_token, self.outer_pos, self.inner_pos):
            trunc_normal_(p, std=.02)

    def forward(self, x):
        words, grid = self.patch_embed(x)
        words = words + self.inner_pos
        B = x.shape[0]
        flat = words.reshape(B, grid[0] * grid[1], -1)  # (B N) words c -> B N (words c)
        sentences = self.proj_norm2(self.proj(self.proj_norm1(flat)))
        pos = torch.cat([self.outer_pos[:, :1],
                         resize_grid_embedding(self.outer_pos[:, 1:], self.pretrain_grid, grid)],
                        dim=1)
        sentences = torch.cat([self.cls_token.expand(B, -1, -1), sentences], dim=1) + pos
        return words, sentences, grid


class TNTStage(nn.Module):
    """A group of TNT blocks; stage 0 also holds the ``embed``ding, the last the final ``norm``."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.embed = self.norm = None


@MODELS.register_module()
class TNT(AttentionBackbone):
    """TNT backbone, presets S / B (23,768,584 / 65,428,680 parameters with the ImageNet
    classifier, as timm's ``tnt_s_patch16_224`` / ``tnt_b_patch16_224``).

    Example::

        backbone=dict(type='TNT', arch='small', out_indices=(3, ), drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='tnt_s_81.5.pth.tar'))
        neck=dict(type='SimpleFeaturePyramid', in_channels=[384], out_channels=256, num_outs=5)

    Args:
        arch: 'small' | 'base' (aliases 's', 'b') or a dict with ``outer_dims``, ``inner_dims``,
            ``depth`` (a multiple of 4: four stages), ``outer_heads``, ``inner_heads`` and
            ``pretrain_size`` (the image size, a side or (H, W), that the sentence position
            embedding was trained at).
        patch_size: side of a sentence in pixels (16); inner_stride: of the word convolution (4).
        mlp_ratio: hidden width of the inner and outer MLPs (4).
        qkv_bias: bias of the q / k / v projections (False, as TNT).
        out_norm: the final LayerNorm on the last stage's map (True, timm's ``norm``).
        act_cfg: activation of the MLPs (GELU).
        Others: see :class:`AttentionBackbone`; ``frozen_stages`` counts groups of blocks, the
        first one with the embeddings.
    """
    arch_zoo = {
        'small': dict(outer_dims=384, inner_dims=24, depth=12, outer_heads=6, inner_heads=4,
                      pretrain_size=224),
        'base': dict(outer_dims=640, inner_dims=40, depth=12, outer_heads=10, inner_heads=4,
                     pretrain_size=224),
    }
    arch_zoo.update(s=arch_zoo['small'], b=arch_zoo['base'])
    converter = 'tnt'

    def __init__(self, arch='small', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, patch_size=16,
                 inner_stride=4, mlp_ratio=4., qkv_bias=False, out_norm=True,
                 act_cfg=dict(type='GELU'), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dim, depth = s['outer_dims'], s['depth']
        if depth % NUM_STAGES or depth < NUM_STAGES:
            raise ValueError(f'TNT arch: depth ({depth}) must be a positive multiple of '
                             f'{NUM_STAGES} (the blocks are split into {NUM_STAGES} stages)')
        if patch_size % inner_stride:
            raise ValueError(f'TNT: patch_size ({patch_size}) must be a multiple of inner_stride '
                             f'({inner_stride})')
        self.size_divisor = patch_size
        num_words = (patch_size // inner_stride) ** 2
        rates = self.drop_path_rates([depth])[0]
        blocks = [TNTBlock(dim, s['inner_dims'], s['outer_heads'], s['inner_heads'], num_words,
                           mlp_ratio, qkv_bias, rates[i], act_cfg) for i in range(depth)]
        per = depth // NUM_STAGES
        self.stages = nn.ModuleList(TNTStage(blocks[i * per:(i + 1) * per])
                                    for i in range(NUM_STAGES))
        grid = tuple(side // patch_size for side in to_pair(s['pretrain_size'], 'pretrain_size'))
        self.stages[0].embed = TNTEmbedding(in_channels, dim, s['inner_dims'], patch_size,
                                            inner_stride, grid)
        self.out_norm = out_norm
        if out_norm and self.is_returned(NUM_STAGES - 1, NUM_STAGES):
            self.stages[-1].norm = nn.LayerNorm(dim)
        self.stage_channels = [dim] * NUM_STAGES
        self.stage_strides = [patch_size] * NUM_STAGES
        self._check_indices()

    def forward_stages(self, x):
        words, sentences, (H, W) = self.stages[0].embed(x)
        outs = []
        for stage in self.stages:
            for block in stage.blocks:
                words, sentences = self.run_block(block, words, sentences)
            out = sentences[:, 1:]
            if stage.norm is not None:
                out = stage.norm(out)
            outs.append(out.transpose(1, 2).reshape(x.shape[0], -1, H, W))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
