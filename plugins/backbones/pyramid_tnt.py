"""PyramidTNT: "PyramidTNT: Improved Transformer-in-Transformer Baselines with Pyramid
Architecture" (Han, Guo, Tang, Wang; arXiv 2201.00978), the pyramid of "Transformer in
Transformer" (arXiv 2103.00112, :class:`TNT`).

As the official ``tnt_pytorch/pyramid_tnt.py`` (huawei-noah/Efficient-AI-Backbones): a
convolutional stem gives sentences at stride 8 and 4x4 words per sentence (at stride 2); four
stages, each after the first preceded by a 2x down-sampling of both: the sentences by a LayerNorm
+ 3x3 stride-2 convolution ("sentence aggregation"), the words by merging the 2x2 neighbouring
sentences' words into 8x8 and a LayerNorm + 3x3 stride-2 convolution back to 4x4 ("word
aggregation"). Only the first block of a stage (and its second in stages of more than 6 blocks)
has an inner transformer, normalised over the whole sentence. The outer attention reduces keys /
values by average pooling (ratios 4, 2, 1, 1) + linear + LayerNorm (PVT's spatial reduction) and
adds a learned bias between every query and every pooled key of the pre-training grid (the
official ``relative_pos``). Sentences of the four stages are at strides 8, 16, 32 and 64: the
stages of the detection / segmentation pyramid (FPN from stride 8). The official SE option
(``se=0`` in every released model) is not built.

Any H, W (the official code takes only the size it was built for: its biases fit one grid): the
image is zero-padded (bottom / right) to a multiple of 8, every later map is ``ceil(H / stride)``
(odd grids padded by the word aggregation, as the official code does for detection); the
sentence position embedding is interpolated bicubically from the pre-training grid, and the
query-key biases bicubically over the query grid and then over the key grid. Key / value pooling
floors as the official ``AvgPool2d`` (a map side shorter than the ratio pools to one).

Parity with the official ``pyramid_tnt.py`` (at f90e129, timm 1.0.31 underneath) run outside the
repository, through the ``pyramid_tnt`` converter (fp32, eval, batch 2, random LayerNorm affines
and BatchNorm statistics; max abs difference over the four stages): Ti / S / M / B 3.9e-6 /
5.0e-6 / 5.7e-6 / 6.7e-6 at their pre-training size (192 / 256), and 5.0e-6 / 4.8e-6 / 5.6e-6 /
6.7e-6 at 192x256 (the official model built for that size); activations up to 5-10.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..ops.global_attention import global_attention
from ..ops.utils import to_pair
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import TokenMlp, pvt_init_, resize_grid_embedding

NUM_STAGES = 4


class ReducedAttention(nn.Module):
    """PyramidTNT's attention on tokens ``(B, N, C)``: ``q`` and ``kv`` projections, keys /
    values from the ``sr_ratio``-average-pooled grid through ``Linear`` + ``LayerNorm`` when
    ``sr_ratio > 1`` (PVT's spatial reduction), an optional additive logit bias, ``proj``."""

    def __init__(self, dim, num_heads, qkv_bias=False, sr_ratio=1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'PyramidTNT: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.linear = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

    def pooled_grid(self, grid):
        """The key / value grid: the official ``AvgPool2d(sr)`` floors; a side shorter than the
        ratio pools to one."""
        return tuple(max(side // self.sr_ratio, 1) for side in grid)

    def attention_macs(self, x, grid=None, bias=None):
        """``q k^T`` and ``A v`` over the pooled keys (see ``plugins.utils.flops``)."""
        B, N, C = x.shape
        keys = N if self.sr_ratio == 1 else self.pooled_grid(grid)[0] * self.pooled_grid(grid)[1]
        return 2 * B * N * keys * C

    def forward(self, x, grid=None, bias=None):
        B, N, C = x.shape
        q = self.q(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        source = x
        if self.sr_ratio > 1:
            kernel = tuple(min(self.sr_ratio, side) for side in grid)
            pooled = F.avg_pool2d(x.transpose(1, 2).reshape(B, C, *grid), kernel, kernel)
            source = self.norm(self.linear(pooled.flatten(2).transpose(1, 2)))
        k, v = self.kv(source).view(B, -1, 2, self.num_heads, C // self.num_heads).permute(
            2, 0, 3, 1, 4)
        out = global_attention(q, k, v, attn_mask=bias)  # B heads N d; bias: 1 heads N M
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class PyramidTNTBlock(nn.Module):
    """A PyramidTNT block: with ``inner_dim > 0``, the inner transformer on the words (its
    LayerNorms over the whole sentence, ``words x inner_dim``) and the words added to their
    sentence; then the outer transformer (reduced attention + the stage's query-key bias)."""

    def __init__(self, outer_dim, inner_dim, outer_heads, inner_heads, num_words, mlp_ratio=4.,
                 qkv_bias=False, drop_path=0., sr_ratio=1, act_cfg=dict(type='GELU')):
        super().__init__()
        self.has_inner = inner_dim > 0
        if self.has_inner:
            self.inner_norm1 = nn.LayerNorm(num_words * inner_dim)
            self.inner_attn = ReducedAttention(inner_dim, inner_heads, qkv_bias)
            self.inner_norm2 = nn.LayerNorm(num_words * inner_dim)
            self.inner_mlp = TokenMlp(inner_dim, int(inner_dim * mlp_ratio), act_cfg)
            self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
            self.proj = nn.Linear(num_words * inner_dim, outer_dim, bias=False)
            self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.outer_norm1 = nn.LayerNorm(outer_dim)
        self.outer_attn = ReducedAttention(outer_dim, outer_heads, qkv_bias, sr_ratio)
        self.outer_norm2 = nn.LayerNorm(outer_dim)
        self.outer_mlp = TokenMlp(outer_dim, int(outer_dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, words, sentences, grid, bias):
        B, N, C = sentences.shape
        if self.has_inner:
            shape = words.shape  # (B N) words c; the norms see B N (words c)
            words = words + self.drop_path(self.inner_attn(
                self.inner_norm1(words.reshape(B, N, -1)).view(shape)))
            words = words + self.drop_path(self.inner_mlp(
                self.inner_norm2(words.reshape(B, N, -1)).view(shape)))
            sentences = sentences + self.proj_norm2(self.proj(self.proj_norm1(
                words.reshape(B, N, -1))))
        sentences = sentences + self.drop_path(
            self.outer_attn(self.outer_norm1(sentences), grid, bias))
        sentences = sentences + self.drop_path(self.outer_mlp(self.outer_norm2(sentences)))
        return words, sentences


class PyramidTNTStem(nn.Module):
    """The official convolutional stem (3x3 convs + BN + ReLU; keys as the official
    ``patch_embed``): a stride-2 common conv; from it the words (a 3x3 conv, each 4x4 block of
    the stride-2 map = the words of one sentence) and the sentences (two stride-2 convs and one
    3x3 conv: stride 8). Input: a multiple of 8."""

    def __init__(self, in_channels, outer_dim, inner_dim, norm_cfg=dict(type='BN')):
        super().__init__()

        def conv_norm_relu(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1), build_norm_layer(norm_cfg, cout)[1],
                    nn.ReLU()]

        self.common_conv = nn.Sequential(*conv_norm_relu(in_channels, inner_dim * 2, 2))
        self.inner_convs = nn.Sequential(*conv_norm_relu(inner_dim * 2, inner_dim, 1))
        self.outer_convs = nn.Sequential(*conv_norm_relu(inner_dim * 2, inner_dim * 4, 2),
                                         *conv_norm_relu(inner_dim * 4, inner_dim * 8, 2),
                                         *conv_norm_relu(inner_dim * 8, outer_dim, 1))

    def forward(self, x):
        x = self.common_conv(x)
        inner = self.inner_convs(x)
        B, c, H2, W2 = inner.shape
        grid = (H2 // 4, W2 // 4)
        words = inner.view(B, c, grid[0], 4, grid[1], 4).permute(0, 2, 4, 3, 5, 1)
        sentences = self.outer_convs(x).flatten(2).transpose(1, 2)  # B N C
        return words.reshape(-1, 16, c), sentences, grid


class WordAggregation(nn.Module):
    """Words of 2x2 neighbouring sentences merged into one 8x8 block per new sentence (odd grids
    zero-padded), LayerNorm before, 3x3 stride-2 convolution back to 4x4 words of ``dim_out``
    (applied to each block alone, as the official code)."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.conv = nn.Conv2d(dim_in, dim_out, 3, 2, 1)

    def forward(self, words, grid):
        H, W = grid
        c = words.shape[-1]
        x = self.norm(words).view(-1, H, W, 4, 4, c)
        if H % 2 or W % 2:  # B H W 4 4 c, padded on H and W
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, W % 2, 0, H % 2))
        B, Hp, Wp = x.shape[:3]
        # B (H/2 2) (W/2 2) 4 4 c -> (B H/2 W/2) c (2 4) (2 4): rows of 2 sentences, then words
        x = x.view(B, Hp // 2, 2, Wp // 2, 2, 4, 4, c).permute(0, 1, 3, 7, 2, 5, 4, 6)
        x = self.conv(x.reshape(-1, c, 8, 8))  # (B N/4) c' 4 4
        return x.flatten(2).transpose(1, 2)


class SentenceAggregation(nn.Module):
    """LayerNorm, then a 3x3 stride-2 convolution on the sentence grid (``ceil(H / 2)``)."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.conv = nn.Conv2d(dim_in, dim_out, 3, 2, 1)

    def forward(self, sentences, grid):
        B, N, C = sentences.shape
        x = self.conv(self.norm(sentences).transpose(1, 2).reshape(B, C, *grid))
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])


def bicubic_matrix(src: int, dst: int, device=None, dtype=None) -> torch.Tensor:
    """The ``(dst, src)`` weights of 1-D bicubic resampling as ``F.interpolate(mode='bicubic',
    align_corners=False)`` computes them (read off by resampling the identity)."""
    eye = torch.eye(src, device=device, dtype=dtype).view(1, src, src, 1)
    return F.interpolate(eye, size=(dst, 1), mode='bicubic',
                         align_corners=False)[0, :, :, 0].t().contiguous()


def resize_attention_bias(bias, query_src, key_src, query_dst, key_dst):
    """A learned bias between a query grid and a key grid, ``(1, heads, Nq0, Nk0)``, resized to
    other grids ``(1, heads, Nq, Nk)``: bicubic (``align_corners=False``) over the query grid and
    over the key grid. Bicubic resampling is separable: the query grid is resized axis by axis
    (on ``Nk0`` keys: a small tensor), then the keys by one matrix product with the Kronecker
    product of the two key axes' weights, which writes the large result once, in its final
    layout (2-5x faster than ``F.interpolate`` on the same data: 0.12 s instead of 0.30 s for
    PyramidTNT-Ti's stage-1 bias at 800x1216). Unchanged when both grids agree."""
    query_src, key_src = tuple(query_src), tuple(key_src)
    query_dst, key_dst = tuple(query_dst), tuple(key_dst)
    if query_src == query_dst and key_src == key_dst:
        return bias
    heads, like = bias.shape[1], dict(device=bias.device, dtype=bias.dtype)
    x = bias.reshape(heads, *query_src, -1)  # h qy qx (ky kx)
    if query_src[0] != query_dst[0]:
        x = torch.einsum('Yy,hyxk->hYxk', bicubic_matrix(query_src[0], query_dst[0], **like), x)
    if query_src[1] != query_dst[1]:
        x = torch.einsum('Xx,hyxk->hyXk', bicubic_matrix(query_src[1], query_dst[1], **like), x)
    x = x.reshape(-1, x.shape[-1])  # (h Nq) Nk0
    if key_src != key_dst:
        keys = torch.kron(bicubic_matrix(key_src[0], key_dst[0], **like),
                          bicubic_matrix(key_src[1], key_dst[1], **like))  # Nk Nk0
        x = x @ keys.t()
    return x.reshape(1, heads, query_dst[0] * query_dst[1], -1)


class PyramidTNTStage(nn.Module):
    """Down-sampling of words and sentences (stages 1-3; stage 0 holds the stem and the position
    embeddings instead), the blocks, the query-key bias of its outer attention on the
    pre-training grid (``relative_pos``, shared by the blocks), the final ``norm`` (last stage)."""

    def __init__(self, blocks, relative_pos_shape):
        super().__init__()
        self.word_merge = self.sentence_merge = self.patch_embed = self.norm = None
        self.register_parameter('outer_pos', None)
        self.register_parameter('inner_pos', None)
        self.blocks = nn.ModuleList(blocks)
        self.relative_pos = nn.Parameter(torch.randn(relative_pos_shape))


@MODELS.register_module()
class PyramidTNT(AttentionBackbone):
    """PyramidTNT backbone, presets Ti / S / M / B (10,578,529 / 31,953,200 / 84,943,572 /
    156,990,072 parameters with the ImageNet classifier, as the official ``ptnt_ti_patch16_192``
    / ``ptnt_s/m/b_patch16_256``); four stages at strides 8 / 16 / 32 / 64.

    Example::

        backbone=dict(type='PyramidTNT', arch='small', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained', checkpoint='ptnt_s_82.0.pth.tar'))
        neck=dict(type='FPN', in_channels=[128, 256, 512, 512], out_channels=256, num_outs=5)

    Args:
        arch: 'tiny' | 'small' | 'medium' | 'base' (aliases 'ti', 's', 'm', 'b') or a dict with
            per-stage ``depths``, ``outer_dims``, ``inner_dims``, ``outer_heads``,
            ``inner_heads`` and ``pretrain_size`` (the image size of the pre-training, a side or
            (H, W): 192 for Ti, 256 for the others; the position embedding and the query-key
            biases are on its grid).
        sr_ratios: key / value pooling of the outer attention per stage (4, 2, 1, 1).
        mlp_ratio: hidden width of the MLPs (4).
        qkv_bias: bias of the q / kv projections (False).
        out_norm: the final LayerNorm on the last stage's map (True, the official ``norm``).
        norm_cfg: norm of the stem (BN).
        act_cfg: activation of the MLPs (GELU).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'tiny': dict(depths=[2, 6, 3, 2], outer_dims=[80, 160, 320, 320],
                     inner_dims=[5, 10, 20, 20], outer_heads=[2, 4, 8, 8],
                     inner_heads=[1, 2, 4, 4], pretrain_size=192),
        'small': dict(depths=[2, 8, 4, 2], outer_dims=[128, 256, 512, 512],
                      inner_dims=[8, 16, 32, 32], outer_heads=[4, 8, 16, 16],
                      inner_heads=[2, 4, 8, 8], pretrain_size=256),
        'medium': dict(depths=[2, 8, 6, 2], outer_dims=[192, 384, 768, 768],
                       inner_dims=[12, 24, 48, 48], outer_heads=[4, 8, 16, 16],
                       inner_heads=[2, 4, 8, 8], pretrain_size=256),
        'base': dict(depths=[2, 10, 6, 2], outer_dims=[256, 512, 1024, 1024],
                     inner_dims=[16, 32, 64, 64], outer_heads=[4, 8, 16, 16],
                     inner_heads=[2, 4, 8, 8], pretrain_size=256),
    }
    arch_zoo.update(ti=arch_zoo['tiny'], s=arch_zoo['small'], m=arch_zoo['medium'],
                    b=arch_zoo['base'])
    size_divisor = 8
    converter = 'pyramid_tnt'

    def __init__(self, arch='small', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, sr_ratios=(4, 2, 1, 1),
                 mlp_ratio=4., qkv_bias=False, out_norm=True, norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='GELU'), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        depths, dims, inner = s['depths'], s['outer_dims'], s['inner_dims']
        lists = [depths, dims, inner, s['outer_heads'], s['inner_heads'], list(sr_ratios)]
        if any(len(v) != NUM_STAGES for v in lists):
            raise ValueError(f'PyramidTNT: depths, outer_dims, inner_dims, outer_heads, '
                             f'inner_heads and sr_ratios need {NUM_STAGES} entries each, got '
                             f'{lists}')
        self.sr_ratios = tuple(sr_ratios)
        grid = [side // 8 for side in to_pair(s['pretrain_size'], 'pretrain_size')]
        self.pretrain_grids = [(grid[0] // 2**i, grid[1] // 2**i) for i in range(NUM_STAGES)]
        rates = self.drop_path_rates(depths)
        stages = []
        for i, depth in enumerate(depths):
            blocks = [PyramidTNTBlock(
                dims[i], inner[i] if j == 0 or (j == 1 and depth > 6) else -1,
                s['outer_heads'][i], s['inner_heads'][i], 16, mlp_ratio, qkv_bias, rates[i][j],
                sr_ratios[i], act_cfg) for j in range(depth)]
            nq = self.pretrain_grids[i][0] * self.pretrain_grids[i][1]
            stage = PyramidTNTStage(blocks, (1, s['outer_heads'][i], nq,
                                             nq // sr_ratios[i] // sr_ratios[i]))
            if i == 0:
                stage.patch_embed = PyramidTNTStem(in_channels, dims[0], inner[0], norm_cfg)
                stage.outer_pos = nn.Parameter(torch.zeros(1, nq, dims[0]))
                stage.inner_pos = nn.Parameter(torch.zeros(1, 16, inner[0]))
            else:
                stage.word_merge = WordAggregation(inner[i - 1], inner[i])
                stage.sentence_merge = SentenceAggregation(dims[i - 1], dims[i])
            stages.append(stage)
        self.stages = nn.ModuleList(stages)
        trunc_normal_(self.stages[0].outer_pos, std=.02)
        trunc_normal_(self.stages[0].inner_pos, std=.02)
        self.out_norm = out_norm
        if out_norm and self.is_returned(NUM_STAGES - 1, NUM_STAGES):
            self.stages[-1].norm = nn.LayerNorm(dims[-1])
        self.stage_channels = list(dims)
        self.stage_strides = [8 * 2**i for i in range(NUM_STAGES)]
        self._check_indices()

    def attention_bias(self, i, grid):
        """Stage ``i``'s query-key bias on the actual query grid and its pooled key grid. Without
        autograd it is detached: SDPA's fused kernel takes only a bias that needs no gradient
        (else it falls back to its unfused path, 3x slower at 256x256)."""
        sr = self.sr_ratios[i]
        src = self.pretrain_grids[i]
        pooled = tuple(max(side // sr, 1) for side in grid)
        bias = resize_attention_bias(self.stages[i].relative_pos, src,
                                     (src[0] // sr, src[1] // sr), grid, pooled)
        return bias if torch.is_grad_enabled() else bias.detach()

    def forward_stages(self, x):
        first = self.stages[0]
        words, sentences, grid = first.patch_embed(x)
        words = words + first.inner_pos
        sentences = sentences + resize_grid_embedding(first.outer_pos, self.pretrain_grids[0],
                                                      grid)
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                words = stage.word_merge(words, grid)
                sentences, grid = stage.sentence_merge(sentences, grid)
            bias = self.attention_bias(i, grid)
            for block in stage.blocks:
                words, sentences = self.run_block(block, words, sentences, grid, bias)
            out = sentences if stage.norm is None else stage.norm(sentences)
            outs.append(out.transpose(1, 2).reshape(x.shape[0], -1, *grid))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            pvt_init_(self)
        super().init_weights()
