"""SG-Former: "SG-Former: Self-guided Transformer with Evolving Token Reallocation" (Ren, Yang, Liu,
Wang; ICCV 2023, arXiv 2308.12216).

A four-stage pyramid whose blocks come in pairs (Sec. 3): a *hybrid-scale* block, where half of
the heads attend globally to the map reduced ``sr x sr`` by a strided conv and the other half
attend inside 7x7 windows at full resolution, and whose attention maps give a *significance map*
(how much attention every location receives, the two scales summed); then a *self-guided* block,
which sorts the tokens by that significance and merges them into keys / values with fewer merged
tokens where the significance is high (fine granularity for salient regions) and many-to-one
merges where it is low (Sec. 3.2, "token reallocation"). The last stage (``sr = 1``) attends
globally. Every attention adds LePE (a 3x3 depth-wise conv of a linear projection) before the
output projection; the MLP is ``fc2(GELU(h + DWConv3x3(h)))`` with ``h = fc1(x)``.

Any H, W (the official ``sgformer.py`` works at 224 only: its merge counts are formulas such as
``H*W // 196 // 4``, its windows and reductions need maps divisible by 7 and ``sr``):

- merged-token counts come from the input: the sorted tokens are split as in the official code
  (lowest quarter / middle half / highest quarter, halves for ``sr = 2``), each part is cut into
  consecutive groups of the merge size that the learned ``f1 / f2 / f3`` expect (196 / 56 / 28
  tokens at ``sr = 8``, 49 / 14 / 7 at ``sr = 4``, 2 / 1 at ``sr = 2``), and a last incomplete
  group is zero-filled (a merge of the tokens it has);
- the 7x7 windows run on the map zero-padded to multiples of 7 with padded keys masked out (and
  left out of the local significance); the ``sr`` reduction runs on the map zero-padded to
  multiples of ``sr`` (a conv with zero padding), its significance repeated over each cell;
- the stride-4 sin-cos ``pos_embed`` (learned from its sin-cos initialisation, 56x56 at 224) is
  interpolated bicubically to the stem's grid.

At 224x224 none of this changes a number: parity with the official model run beside this one
with the same weights (converted by the ``sgformer`` converter; fp32, eval): max abs diff over
the four stage outputs 0.0 / 0.0 / 0.0 (S / M / B) at 224x224 (``tests/backbones/test_sgformer.py``
records how it was measured). The attention probabilities are computed explicitly (the
significance map needs them) in the official order of operations: the significance is sorted,
so float noise in it would reorder tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from ..ops.ring_attention import sequence_parallel_attention
from ..ops.utils import pad_to_multiple
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import pvt_init_

#: Merge sizes of the self-guided attention per reduction ratio (the official ``f1, f2, f3``):
#: the sorted tokens are cut into parts (lowest significance first) and every ``size``
#: consecutive tokens of a part are merged into one key / value token.
MERGE_SIZES = {8: (196, 56, 28), 4: (49, 14, 7), 2: (2, 1)}
WINDOW = 7  # the hybrid-scale attention's local windows (hard-coded in the official code)
QUERY_CHUNK = 4096  # queries per chunk of the explicit attention (bounds its memory; the
# stage-1 map at 224, 3136 tokens, fits one chunk: the significance is then the official mean)


def sincos_pos_embed(dim, size):
    """The fixed 2-D sin-cos embedding (MAE's ``get_2d_sincos_pos_embed``) of a ``size x size``
    grid, row-major: ``(size * size, dim)``; the first half of the channels encodes the column,
    the second half the row, each as ``[sin(p w), cos(p w)]`` with ``w_k = 10000^(-4k / dim)``."""
    if dim % 4:
        raise ValueError(f'the sin-cos position embedding needs dim divisible by 4, got {dim}')
    omega = 1.0 / 10000**(torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    coords = torch.arange(size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing='ij')

    def encode(pos):
        out = pos.reshape(-1, 1) * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()


def softmax_attention(q, k, v, scale, key_significance=False):
    """``softmax(q k^T * scale) v`` written out (queries in chunks of ``QUERY_CHUNK``).

    ``q: (..., heads, N, d)``, ``k, v: (..., heads, M, d)``. With ``key_significance`` also
    returns the attention that each key receives, averaged over heads and queries:
    ``(..., M)``, detached (Sec. 3.1, the significance map)."""
    n = q.shape[-2]
    if n <= QUERY_CHUNK:
        attn = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
        out = attn @ v
        if not key_significance:
            return out
        return out, attn.detach().mean(-3).mean(-2)
    outs, total = [], 0
    for start in range(0, n, QUERY_CHUNK):
        attn = ((q[..., start:start + QUERY_CHUNK, :] @ k.transpose(-2, -1)) * scale).softmax(-1)
        outs.append(attn @ v)
        if key_significance:
            total = total + attn.detach().mean(-3).sum(-2)
    out = torch.cat(outs, dim=-2)
    return (out, total / n) if key_significance else out


class ConvGN(nn.Sequential):
    """Conv (no bias) + GroupNorm with one group (the official ``Conv2d_BN``)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1):
        super().__init__()
        self.add_module('conv', nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                          kernel_size // 2, groups=groups, bias=False))
        self.add_module('norm', nn.GroupNorm(1, out_channels))


class ConvStem(nn.Module):
    """3x3/2, 3x3, 3x3/2 convs (each + GroupNorm, GELU between), then a LayerNorm over channels
    (the official ``Head``). Returns tokens ``(B, N, C)`` and the grid ``(h, w)``."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.conv = nn.Sequential(ConvGN(in_channels, dim, 3, 2), nn.GELU(), ConvGN(dim, dim, 3),
                                  nn.GELU(), ConvGN(dim, dim, 3, 2))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.conv(x)
        return self.norm(x.flatten(2).transpose(1, 2)), x.shape[2:]


class PatchMerging(nn.Module):
    """1x1 conv, depth-wise 3x3/2 conv, 1x1 conv (each + GroupNorm, GELU between)."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.conv1 = ConvGN(dim, out_dim)
        self.conv2 = ConvGN(out_dim, out_dim, 3, 2, groups=out_dim)
        self.conv3 = ConvGN(out_dim, out_dim)
        self.act = nn.GELU()

    def forward(self, x):  # B C H W
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2), x.shape[2:]


class DWConvMlp(nn.Module):
    """``fc2(GELU(h + DWConv3x3(h)))``, ``h = fc1(x)``, on tokens ``(B, N, C)``."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, size):
        x = self.fc1(x)
        x = x + self._conv(x, size)  # the conv output is freed before GELU allocates (memory)
        return self.fc2(self.act(x))

    def _conv(self, x, size):
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).view(b, c, *size)).flatten(2).transpose(1, 2)


class _AttentionBase(nn.Module):
    """LePE (``DWConv3x3(Linear(x))``, added before the output projection) and the projection."""

    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'SG-Former: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.scale = self.head_dim**-0.5
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def lepe(self, x, size):
        b, n, c = x.shape
        lepe = self.lepe_linear(x).transpose(1, 2).view(b, c, *size)
        return self.lepe_conv(lepe).view(b, c, n).transpose(1, 2)

    def heads(self, x, num_heads):  # B N (h d) -> B h N d
        return x.reshape(x.shape[0], x.shape[1], num_heads, self.head_dim).permute(0, 2, 1, 3)

    def kv_heads(self, x, num_heads):  # B N (2 h d) -> 2 B h N d
        b, n = x.shape[:2]
        return x.reshape(b, n, 2, num_heads, self.head_dim).permute(2, 0, 3, 1, 4)


class GlobalAttention(_AttentionBase):
    """Multi-head self-attention over all tokens, plus LePE (the last stage, ``sr = 1``).
    ``sequence_parallel``: the tokens sharded over the processes of the default group when they
    hold the same images (ring attention, ``plugins/ops/ring_attention.py``; the same result, to
    float rounding); one-process runs attend with SDPA instead of the explicit softmax."""

    def __init__(self, dim, num_heads, qkv_bias=True, sequence_parallel=False):
        super().__init__(dim, num_heads)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.sequence_parallel = sequence_parallel

    def forward(self, x, size, significance=None):
        b, n, c = x.shape
        if self.sequence_parallel:
            out = sequence_parallel_attention(x, self.project_qkv, scale=self.scale)
        else:
            out = softmax_attention(*self.project_qkv(x), self.scale)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out + self.lepe(x, size)), None

    def project_qkv(self, x):  # B n C -> 3 x (B heads n d)
        return (self.heads(self.q(x), self.num_heads), *self.kv_heads(self.kv(x), self.num_heads))


class HybridScaleAttention(_AttentionBase):
    """Hybrid-scale attention (Sec. 3.1): heads ``0 .. h/2-1`` attend to the map reduced by a
    ``sr x sr`` strided conv (+ LayerNorm, GELU), heads ``h/2 .. h-1`` inside 7x7 windows at full
    resolution. Returns the output and the significance map ``(B, H, W)``: the mean attention
    each location receives from the global heads (repeated over its ``sr x sr`` cell) plus the
    mean it receives inside its window from the local heads."""

    def __init__(self, dim, num_heads, sr_ratio, qkv_bias=True):
        super().__init__(dim, num_heads)
        if num_heads % 2:
            raise ValueError(f'SG-Former hybrid-scale attention splits the heads in two halves; '
                             f'num_heads must be even, got {num_heads}')
        self.sr_ratio = sr_ratio
        self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.q1 = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
        self.q2 = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)

    def forward(self, x, size, significance=None):
        b, n, c = x.shape
        h, w = size
        half = self.num_heads // 2
        # global half: keys / values from the zero-padded map reduced sr x sr
        x_map = x.transpose(1, 2).reshape(b, c, h, w)
        reduced = self.sr(pad_to_multiple(x_map, self.sr_ratio)[0])
        hr, wr = reduced.shape[2:]
        reduced = self.act(self.norm(reduced.reshape(b, c, -1).transpose(1, 2)))
        k1, v1 = self.kv_heads(self.kv1(reduced), half)
        out1, sig1 = softmax_attention(self.heads(self.q1(x), half), k1, v1, self.scale, True)
        out1 = out1.transpose(1, 2).reshape(b, n, c // 2)
        sig1 = sig1.view(b, hr, 1, wr, 1).expand(-1, -1, self.sr_ratio, -1, self.sr_ratio)
        sig1 = sig1.reshape(b, hr * self.sr_ratio, wr * self.sr_ratio)[:, :h, :w]
        # local half: 7x7 windows of the map zero-padded to multiples of 7, padded keys masked
        out2, sig2 = self.window_attention(self.heads(self.q2(x), half),
                                           *self.kv_heads(self.kv2(x), half), size)
        out = torch.cat([out1, out2], dim=-1)
        return self.proj(out + self.lepe(x, size)), sig2 + sig1

    def window_attention(self, q, k, v, size):
        b, heads, n, d = q.shape
        h, w = size
        ws = WINDOW

        def windows(t):  # B heads N d -> (B heads nW) ws*ws d
            t = pad_to_multiple(t.reshape(b * heads, h, w, d), ws, dims=(1, 2))[0]
            hp, wp = t.shape[1:3]
            t = t.view(b * heads, hp // ws, ws, wp // ws, ws, d).permute(0, 1, 3, 2, 4, 5)
            return t.reshape(-1, ws * ws, d), (hp, wp)

        (qw, (hp, wp)), (kw, _), (vw, _) = windows(q), windows(k), windows(v)
        nh, nw = hp // ws, wp // ws
        logits = (qw @ kw.transpose(-2, -1)) * self.scale
        valid = None
        if (hp, wp) != (h, w):  # mask padded keys; padded queries are cropped below
            valid = torch.zeros(hp, wp, dtype=torch.bool, device=q.device)
            valid[:h, :w] = True
            valid = valid.view(nh, ws, nw, ws).transpose(1, 2).reshape(1, nh * nw, 1, ws * ws)
            logits = logits.view(b * heads, nh * nw, ws * ws, ws * ws)
            logits = logits.masked_fill(~valid, float('-inf')).view(-1, ws * ws, ws * ws)
        attn = logits.softmax(dim=-1)
        out = (attn @ vw).view(b, heads, nh, nw, ws, ws, d)
        out = out.permute(0, 2, 4, 3, 5, 1, 6).reshape(b, hp, wp, heads * d)[:, :h, :w]
        # significance: mean over heads, then over the window's (real) queries, per key
        attn = attn.detach().view(b, heads, nh * nw, ws * ws, ws * ws).mean(1)
        if valid is None:
            sig = attn.mean(dim=2)
        else:
            real_queries = valid.view(1, nh * nw, ws * ws, 1).to(attn.dtype)
            sig = (attn * real_queries).sum(2) / real_queries.sum(2)
        sig = sig.view(b, nh, nw, ws, ws).permute(0, 1, 3, 2, 4).reshape(b, hp, wp)[:, :h, :w]
        return out.reshape(b, h * w, heads * d), sig


class SelfGuidedAttention(_AttentionBase):
    """Self-guided attention with token reallocation (Sec. 3.2): the tokens are sorted by the
    significance map of the previous (hybrid-scale) block, once in row-major and once in
    column-major order; each order is split into parts by significance and every part's
    consecutive tokens are merged ``size``-to-one by the learned weights ``f1, f2, f3``
    (:data:`MERGE_SIZES`: salient tokens are merged in small groups, minor ones in large groups).
    Heads ``0 .. h/2-1`` attend to the row-order merges (``kv1``), the others to the
    column-order merges (``kv2``); all queries stay at full resolution."""

    def __init__(self, dim, num_heads, sr_ratio, qkv_bias=True):
        super().__init__(dim, num_heads)
        if num_heads % 2:
            raise ValueError(f'SG-Former self-guided attention splits the heads in two halves; '
                             f'num_heads must be even, got {num_heads}')
        if sr_ratio not in MERGE_SIZES:
            raise ValueError(f'SG-Former defines token merges for sr_ratio in '
                             f'{sorted(MERGE_SIZES)} (and 1: global attention), got {sr_ratio}')
        self.merge_sizes = MERGE_SIZES[sr_ratio]
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
        for i, size in enumerate(self.merge_sizes):
            self.add_module(f'f{i + 1}', nn.Linear(size, 1))

    def reallocate(self, tokens, significance):
        """Sort ``tokens (B, N, C)`` by ``significance (B, N)`` and merge each part's groups:
        ``(B, T, C)`` with ``T = sum(ceil(part / size))``."""
        b, n, c = tokens.shape
        order = torch.sort(significance, dim=1)[1]
        if len(self.merge_sizes) == 3:  # lowest quarter, middle half, highest quarter
            bounds = [0, n // 4, n // 4 * 3, n]
        else:
            bounds = [0, n // 2, n]
        merged = []
        for i, size in enumerate(self.merge_sizes):
            index = order[:, bounds[i]:bounds[i + 1], None].expand(-1, -1, c)
            part = torch.gather(tokens, 1, index)
            groups = math.ceil(part.shape[1] / size)
            part = F.pad(part, (0, 0, 0, groups * size - part.shape[1]))  # zero-fill the last
            merge = getattr(self, f'f{i + 1}')
            merged.append(merge(part.transpose(1, 2).reshape(b, c, groups, size)).squeeze(-1))
        return torch.cat(merged, dim=-1).transpose(1, 2)

    def forward(self, x, size, significance):
        if significance is None:
            raise ValueError('SG-Former self-guided attention needs the significance map of the '
                             'hybrid-scale block before it')
        b, n, c = x.shape
        h, w = size
        half = self.num_heads // 2
        q = self.heads(self.q(x), self.num_heads)
        rows = self.reallocate(x, significance.reshape(b, n))
        columns = self.reallocate(x.view(b, h, w, c).transpose(1, 2).reshape(b, n, c),
                                  significance.transpose(1, 2).reshape(b, n))
        kv = torch.cat([self.kv_heads(self.kv1(rows), half),
                        self.kv_heads(self.kv2(columns), half)], dim=2)
        out = softmax_attention(q, kv[0], kv[1], self.scale).transpose(1, 2).reshape(b, n, c)
        return self.proj(out + self.lepe(x, size)), None


class SGFormerBlock(nn.Module):
    """``x + Attn(LN(x))``, ``x + MLP(LN(x))`` on tokens; ``forward(x, size, significance)``
    returns the tokens and the significance map for the next block (None after a self-guided
    or global block)."""

    def __init__(self, dim, num_heads, sr_ratio, guided, mlp_ratio, drop_path, qkv_bias=True,
                 sequence_parallel=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if sr_ratio == 1:
            self.attn = GlobalAttention(dim, num_heads, qkv_bias, sequence_parallel)
        elif guided:
            self.attn = SelfGuidedAttention(dim, num_heads, sr_ratio, qkv_bias)
        else:
            self.attn = HybridScaleAttention(dim, num_heads, sr_ratio, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DWConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, size, significance=None):
        attn, significance = self.attn(self.norm1(x), size, significance)
        x = x + self.drop_path(attn)
        x = x + self.drop_path(self.mlp(self.norm2(x), size))
        return x, significance


class SGFormerStage(nn.Module):
    """Patch embedding (the conv stem for stage 0), blocks, output LayerNorm; stage 0 also holds
    the position embedding."""

    def __init__(self, patch_embed, blocks, dim, pos_embed=None):
        super().__init__()
        self.patch_embed = patch_embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if pos_embed is not None:
            self.pos_embed = nn.Parameter(pos_embed)


@MODELS.register_module()
class SGFormer(AttentionBackbone):
    """SG-Former backbone, presets S/M/B (the official ``sgformer_s / _m / _b``; parameters with
    the 1000-class classifier as the official code builds them: see ``reference.yaml``).

    Example::

        backbone=dict(type='SGFormer', arch='s', drop_path_rate=0.2,
                      init_cfg=dict(type='Pretrained', checkpoint='sgformer_s.pth'))

    Args:
        arch: 's' | 'm' | 'b' (aliases 'small', 'medium', 'base') or a dict with ``embed_dims``,
            ``depths``, ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (per stage; ``sr`` in
            1, 2, 4, 8) and ``pos_embed_size`` (the grid of the learned stride-4 position
            embedding: 56 for 224 pre-training).
        sequence_parallel: the global stages (``sr = 1``) shard their tokens over the processes
            of a distributed run whose processes hold the same images (ring attention,
            ``plugins/ops/ring_attention.py``).
        Others: see :class:`AttentionBackbone`. Stages below the last alternate hybrid-scale and
        self-guided blocks (blocks 0, 2, ... and 1, 3, ...), the last stage attends globally.
    """
    _common = dict(num_heads=[2, 4, 8, 16], mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1],
                   pos_embed_size=56)
    arch_zoo = {
        's': dict(embed_dims=[64, 128, 256, 512], depths=[2, 4, 16, 1], **_common),
        'm': dict(embed_dims=[64, 128, 256, 512], depths=[2, 6, 28, 2], **_common),
        'b': dict(embed_dims=[96, 192, 384, 768], depths=[4, 6, 24, 2],
                  **dict(_common, num_heads=[4, 6, 12, 24])),
    }
    arch_zoo.update(small=arch_zoo['s'], medium=arch_zoo['m'], base=arch_zoo['b'])
    converter = 'sgformer'
    #: the official evaluation (its main.py, model EMA on by default) loads the EMA weights
    checkpoint_copies = ('state_dict_ema', 'state_dict', 'model')

    def __init__(self, arch='s', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, init_cfg=None,
                 sequence_parallel=False):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths = s['embed_dims'], s['depths']
        lengths = {k: len(s[k]) for k in ('embed_dims', 'depths', 'num_heads', 'mlp_ratios',
                                          'sr_ratios')}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'SGFormer needs one value per stage in each of {sorted(lengths)}; '
                             f'got lengths {lengths}')
        bad = [r for r in s['sr_ratios'] if r != 1 and r not in MERGE_SIZES]
        if bad:
            raise ValueError(f'SGFormer sr_ratios must be 1 or one of {sorted(MERGE_SIZES)}, '
                             f'got {s["sr_ratios"]}')
        rates = self.drop_path_rates(depths)
        last = len(dims) - 1
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            embed = ConvStem(in_channels, dim) if i == 0 else PatchMerging(dims[i - 1], dim)
            blocks = [SGFormerBlock(dim, s['num_heads'][i], s['sr_ratios'][i],
                                    guided=(j % 2 == 1 and i < last),
                                    mlp_ratio=s['mlp_ratios'][i], drop_path=rates[i][j],
                                    sequence_parallel=sequence_parallel)
                      for j in range(depth)]
            pos = (sincos_pos_embed(dim, s['pos_embed_size']).unsqueeze(0) if i == 0 else None)
            stages.append(SGFormerStage(embed, blocks, dim, pos))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def position_embedding(self, size):
        """The stride-4 position embedding on an ``(h, w)`` grid: ``(1, h * w, C)``."""
        pos = self.stages[0].pos_embed
        grid = self.arch_settings['pos_embed_size']
        if tuple(size) == (grid, grid):
            return pos
        pos = pos.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=tuple(size), mode='bicubic', align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def forward_stages(self, x):
        outs = []
        for i, stage in enumerate(self.stages):
            x, size = stage.patch_embed(x)
            size = tuple(size)
            if i == 0:
                x = x + self.position_embedding(size)
            significance = None
            for block in stage.blocks:
                x, significance = self.run_block(block, x, size, significance)
            x = stage.norm(x)
            # contiguous NCHW, as the official code hands it to the next stage (a strided view
            # would make the convs there take another kernel: other float rounding, other sorts)
            x = x.transpose(1, 2).reshape(x.shape[0], -1, *size).contiguous()
            outs.append(x)
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation
            pvt_init_(self)
        super().init_weights()
