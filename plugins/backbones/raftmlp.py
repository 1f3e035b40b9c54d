"""RaftMLP: "RaftMLP: How Much Can Be Done Without Attention and with Less Spatial Locality?"
(Tatsunami & Taki, ACCV 2022, arXiv 2108.04384).

An MLP-Mixer made hierarchical (four levels, strides 4 / 8 / 16 / 32) with two changes (paper
Sec. 3): the token-mixing MLP is split into a vertical and a horizontal one (Sec. 3.1), and each
of them mixes a "raft" of ``r`` channel groups jointly: the channels are split into ``r`` groups of
``C / r``, and for every channel ``j < C / r`` and every column (row) the MLP reads the ``r x H``
(``r x W``) values of the ``r`` channels ``g C / r + j`` along the column (row) (Sec. 3.2). Each
level starts with the cross-scale MLP embedding (Sec. 3.3): patches of several sizes around every
stride-``s`` position, unfolded, concatenated, one linear layer (computed here as the equal sum of
strided convolutions, one per patch size). A block is vertical raft mixing, horizontal raft
mixing, channel MLP, each pre-LayerNorm with a residual; stochastic depth has the same rate in
every block, as the official code.

The token-mixing MLPs are tied to the pre-training grid (224 / stride: 56, 28, 14, 7). With
``token_grid='resize'`` (default, as the official code, ``libs/modules.py`` ``RaftShrink`` /
``RaftExpansion``, and the authors' mmdet / mmseg backbones) every block resizes its input map to
that grid (bicubic, ``align_corners=False``), mixes tokens there (both residuals included) and
resizes the result back to the map's size before the channel MLP; maps that are not a multiple of
a level's patch size are first resized up to one (bicubic, ``Level.forward``). Any input runs, but
the token mixing (and its residual path) sees a map squeezed to the pre-training grid.
``token_grid='window'`` (not in the paper) instead runs the MLPs natively: each column (row) is cut
into windows of the pre-training length (zero-padded after the LayerNorm), each mixed on its own;
the same as 'resize' at 224.

The maps returned: as the official dense-task backbones (``DetRaftMLP`` / ``SegRaftMLP``, whose
forward hook on ``levels[0].fn[1]`` takes level 0's map), the stride-4 map is the level-0
*embedding*, before its blocks (``first_map='embedding'``); ``first_map='blocks'`` returns the
output of level 0's blocks instead. Levels 1-3 return their blocks' outputs; no output norms.

Parity with the official code (``libs/models.py`` ``RaftMLP`` of okojoalg/raft-mlp run outside the
repository; the same random weights through the ``raftmlp`` converter, LayerNorm affines and all
biases randomised; fp32, eval; the outputs of its four ``levels``, and level 0's embedding as the
official detection hook takes it), max abs diff over the levels (|x| <= 9.5): S / M / L
3.3e-6 / 3.4e-6 / 3.6e-6 at 224x224, 3.3e-6 / 3.8e-6 / 3.8e-6 at 97x131 (the resize path), S
3.3e-6 at 33x250; the embedding <= 1.5e-6.

Cost of the faithful resizing at 800x1216 (S, one thread, CPU time, on a 2-core machine shared
with other jobs): 'resize' 1.37 s per image, 0.16 s of it in the bicubic resizes (the token MLPs
run on 56x56 / 28x28 / 14x14 / 7x7 instead of 200x304 / 100x152 / 50x76 / 25x38 tokens);
'window' 1.81 s. The two are different models at that size, not approximations of one another:
with random weights levels 1-3 differ by mean |diff| 1.0-1.5 against mean |x| 0.8-1.2 (level 0,
the embedding, is the same); no trained release was at hand to compare trained features.
"""
import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from ..ops.utils import flop_counting, graph_tracing, untraced_call
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import TokenMlp


def bicubic(x: torch.Tensor, size) -> torch.Tensor:
    """Bicubic resize of an NCHW map (``align_corners=False``), the official resampling.

    In a traced graph (``torch.export``, ONNX) it is two products with the resize matrices of
    the axes (:func:`bicubic_matrix`) instead of ``F.interpolate``: onnxruntime's default graph
    optimizations move a Resize fed by a channels-last map into its blocked layout, whose cubic
    kernel refuses to downscale ("'Cubic' mode only supports ... scales >= 1"), so every input
    off the pre-training grid failed there. The same numbers (within fp32 rounding, 1e-6)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if flop_counting():  # a resampling, not the paper's work: one opaque node of the count
        return untraced_call(bicubic, x, tuple(int(s) for s in size))
    if graph_tracing():
        rows = torch.from_numpy(bicubic_matrix(x.shape[2], size[0])).to(x)
        cols = torch.from_numpy(bicubic_matrix(x.shape[3], size[1])).to(x)
        return torch.matmul(torch.matmul(rows, x), cols.t())
    return F.interpolate(x, size=size, mode='bicubic', align_corners=False)


@functools.lru_cache(maxsize=32)
def bicubic_matrix(length: int, out: int) -> np.ndarray:
    """``(out, length)`` matrix of PyTorch's bicubic resize along one axis (``align_corners=False``,
    Keys' cubic convolution with ``a = -0.75``, source positions ``(o + 0.5) length / out - 0.5``,
    taps beyond the border clamped to it)."""
    a = -0.75
    src = (np.arange(out) + 0.5) * (length / out) - 0.5
    base = np.floor(src)
    t = src - base
    # weights of the taps base-1 .. base+2 (PyTorch's get_cubic_upsample_coefficients)
    taps = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    matrix = np.zeros((out, length), dtype=np.float64)
    for k, weight in enumerate(taps):
        index = np.clip(base.astype(np.int64) - 1 + k, 0, length - 1)
        np.add.at(matrix, (np.arange(out), index), weight)
    return matrix.astype(np.float32)


class CrossScaleEmbedding(nn.Module):
    """Cross-scale MLP embedding (paper Sec. 3.3): at stride ``s = min(kernels)``, the ``k x k``
    patches (zero padding ``(k - s) / 2``) of every kernel size ``k``, concatenated and projected by
    one linear layer ``fc`` (official key). The linear layer over unfolded patches equals the sum of
    one stride-``s`` convolution per kernel with the matching slice of ``fc.weight``."""

    def __init__(self, in_channels, dim, kernels):
        super().__init__()
        self.stride = min(kernels)
        if any(k % self.stride for k in kernels):
            raise ValueError(f'RaftMLP embedding kernels {list(kernels)} must be multiples of '
                             f'the smallest ({self.stride}), its stride')
        self.kernels = tuple(kernels)
        self.in_channels = in_channels
        self.fc = nn.Linear(in_channels * sum(k * k for k in kernels), dim)

    def forward(self, x):  # B Cin H W -> B C H/s W/s
        weights = self.fc.weight.split([self.in_channels * k * k for k in self.kernels], dim=1)
        out = None
        for k, w in zip(self.kernels, weights):
            y = F.conv2d(x, w.reshape(-1, self.in_channels, k, k), stride=self.stride,
                         padding=(k - self.stride) // 2)
            out = y if out is None else out + y
        return out + self.fc.bias.view(1, -1, 1, 1)


class RaftTokenMixing(nn.Module):
    """Raft token-mixing along one axis (paper Sec. 3.2), channels-last ``(B, H, W, C)`` in and out:
    ``x + MLP(LN(x))`` where the MLP (``fc1``, GELU, ``fc2``, expansion ``expansion``) mixes, for
    each channel ``j < C / r`` and each line along ``axis`` ('vertical': a column, 'horizontal': a
    row), the ``r x length`` values of channels ``g C / r + j`` (``g < r``) on the line. Lines
    longer than ``length`` are cut into windows of ``length`` (zero-padded after the norm).

    The LayerNorm's affine is stored as the official one, whose channel order is ``(j, g)``
    (``PermutedBlock.norm``); it is applied in the map's order ``(g, j)``."""

    def __init__(self, channels, length, raft_size, expansion, axis, drop_path=0.):
        super().__init__()
        if channels % raft_size:
            raise ValueError(f'RaftMLP: channels ({channels}) must be divisible by the raft '
                             f'size ({raft_size})')
        self.length, self.raft, self.axis = length, raft_size, axis
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(raft_size * length, raft_size * length * expansion)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(raft_size * length * expansion, raft_size * length)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _affine(self, param):
        return param.view(-1, self.raft).t().reshape(-1)  # (j, g) -> (g, j) order

    def forward(self, x):
        B, H, W, C = x.shape
        y = F.layer_norm(x, (C, ), self._affine(self.norm.weight), self._affine(self.norm.bias),
                         self.norm.eps)
        if self.axis == 'horizontal':
            y = y.transpose(1, 2)                                    # B W H C: lines are rows
        lines, other = y.shape[1:3]
        n = math.ceil(lines / self.length)
        y = F.pad(y, (0, 0, 0, 0, 0, n * self.length - lines))
        y = y.view(B, n, self.length, other, self.raft, C // self.raft)
        y = y.permute(0, 1, 3, 5, 4, 2).reshape(B, n, other, C // self.raft, -1)  # (g, l) last
        y = self.fc2(self.act(self.fc1(y)))
        y = y.view(B, n, other, C // self.raft, self.raft, self.length)
        y = y.permute(0, 1, 5, 2, 4, 3).reshape(B, n * self.length, other, C)[:, :lines]
        if self.axis == 'horizontal':
            y = y.transpose(1, 2)
        return x + self.drop_path(y)


class ChannelMixing(nn.Module):
    """``x + MLP(LN(x))`` over the channels of a channels-last map (the official ChannelBlock)."""

    def __init__(self, channels, expansion, drop_path=0.):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mlp = TokenMlp(channels, channels * expansion)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        return x + self.drop_path(self.mlp(self.norm(x)))


class RaftBlock(nn.Module):
    """Vertical raft mixing, horizontal raft mixing, channel MLP, on a channels-last map. With
    ``token_grid='resize'`` the two token mixings run on the map resized to the pre-training grid
    ``(length, length)`` and the result is resized back (official ``RaftShrink`` /
    ``RaftExpansion``)."""

    def __init__(self, channels, length, raft_size, token_expansion, channel_expansion,
                 token_grid, drop_path=0.):
        super().__init__()
        self.length, self.token_grid = length, token_grid
        self.vertical = RaftTokenMixing(channels, length, raft_size, token_expansion, 'vertical',
                                        drop_path)
        self.horizontal = RaftTokenMixing(channels, length, raft_size, token_expansion,
                                          'horizontal', drop_path)
        self.channel = ChannelMixing(channels, channel_expansion, drop_path)

    def forward(self, x):  # B H W C
        size = x.shape[1:3]
        resize = self.token_grid == 'resize' and tuple(size) != (self.length, self.length)
        if resize:
            x = bicubic(x.permute(0, 3, 1, 2), (self.length, self.length)).permute(0, 2, 3, 1)
        x = self.horizontal(self.vertical(x))
        if resize:
            x = bicubic(x.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)
        return self.channel(x)


class RaftStage(nn.Module):
    """A level: the cross-scale embedding and its blocks."""

    def __init__(self, embed, blocks):
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)


@MODELS.register_module()
class RaftMLP(AttentionBackbone):
    """RaftMLP backbone, presets S / M / L (9.35M / 20.64M / 35.16M parameters in the four levels;
    9.87M / 21.41M / 36.18M with the official ImageNet head, paper: 9.9M for S).

    Example::

        backbone=dict(type='RaftMLP', arch='s',
                      init_cfg=dict(type='Pretrained', checkpoint='last_model_0.pt'))

    Args:
        arch: 's' | 'm' | 'l' (aliases 'small', 'medium', 'large') or a dict with ``embed_dims``
            and ``depths`` (four entries each).
        pretrain_img_size: the pre-training image side (224); it fixes each level's token grid.
        embed_kernels: patch sizes of each level's cross-scale embedding (official
            ``((4, 8), (2, 4), (2, 4), (2,))``); the smallest is the level's stride.
        raft_size: channel groups of a raft (2).
        token_expansion, channel_expansion: hidden widths of the MLPs (2, 4).
        token_grid: 'resize' (official: token mixing on the pre-training grid, bicubic there and
            back) or 'window' (token mixing at the map's own size, in windows of the pre-training
            length).
        first_map: the stride-4 output: 'embedding' (level 0's embedding, as the official
            detection / segmentation backbones return) or 'blocks' (level 0's block output).
        Others: see :class:`AttentionBackbone` (``drop_path_rate``: the same in every block).
    """
    arch_zoo = {
        's': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 6, 2]),
        'm': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2]),
        'l': dict(embed_dims=[128, 192, 512, 1024], depths=[2, 2, 6, 2]),
    }
    arch_zoo.update(small=arch_zoo['s'], medium=arch_zoo['m'], large=arch_zoo['l'])
    converter = 'raftmlp'

    def __init__(self, arch='s', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, pretrain_img_size=224,
                 embed_kernels=((4, 8), (2, 4), (2, 4), (2, )), raft_size=2, token_expansion=2,
                 channel_expansion=4, token_grid='resize', first_map='embedding', init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        dims, depths = self.arch_settings['embed_dims'], self.arch_settings['depths']
        if not len(dims) == len(depths) == len(embed_kernels):
            raise ValueError(f'RaftMLP: embed_dims {dims}, depths {depths} and embed_kernels '
                             f'{list(embed_kernels)} must have one entry per level')
        if token_grid not in ('resize', 'window'):
            raise ValueError(f"RaftMLP token_grid must be 'resize' (official) or 'window', got "
                             f'{token_grid!r}')
        if first_map not in ('embedding', 'blocks'):
            raise ValueError(f"RaftMLP first_map must be 'embedding' (official) or 'blocks', "
                             f'got {first_map!r}')
        self.first_map = first_map
        self.patch_sizes = [min(k) for k in embed_kernels]
        stages, grid, channels = [], pretrain_img_size, in_channels
        for dim, depth, kernels, patch in zip(dims, depths, embed_kernels, self.patch_sizes):
            grid = math.ceil(grid / patch)
            blocks = [RaftBlock(dim, grid, raft_size, token_expansion, channel_expansion,
                                token_grid, drop_path_rate) for _ in range(depth)]
            stages.append(RaftStage(CrossScaleEmbedding(channels, dim, kernels), blocks))
            channels = dim
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [math.prod(self.patch_sizes[:i + 1]) for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for i, (stage, patch) in enumerate(zip(self.stages[:max(self.out_indices) + 1],
                                               self.patch_sizes)):
            h, w = x.shape[2:]
            x = bicubic(x, (math.ceil(h / patch) * patch, math.ceil(w / patch) * patch))
            x = stage.embed(x)
            if i == 0 and self.first_map == 'embedding':
                outs.append(x)
                if max(self.out_indices) == 0:  # level 0's blocks feed nothing returned
                    break
            x = x.permute(0, 2, 3, 1)                                   # B C H W -> B H W C
            for block in stage.blocks:
                x = self.run_block(block, x)
            x = x.permute(0, 3, 1, 2)
            if not (i == 0 and self.first_map == 'embedding'):
                outs.append(x)
        return outs
