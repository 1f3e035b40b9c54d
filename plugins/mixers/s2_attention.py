"""S2-Attention on 2-D tiles: every head sees its local tiles plus its own strided shard of the
far tiles; together the heads cover the whole map.
Paper: Lin et al., "S2-Attention: Hardware-Aware Context Sharding Among Attention Heads" (arXiv
2407.17678), with the local-stride pattern of its kernel library (dkernel, the Phi-3-small
kernel: blocks of 64 tokens, ``local_blocks``, ``vert_stride``, per-head offsets). Here a block is
an ``8 x 8`` tile of the map; see :mod:`plugins.ops.strided_sparse` for the 2-D pattern.

Non-causal: the dkernel kernel only runs causal attention (and is CUDA-only); the 2-D pattern is
symmetric (a query tile sees local tiles in every direction, and the strided shard everywhere).
The strided offsets are absolute tile coordinates (dkernel's ``vert_position_type='absolute'``),
which is what makes the heads' shards differ and together cover every tile; dkernel's
bidirectional default ('relative') gives every head the same pattern.

Cost per head: ``O(N ((2L - 1)^2 t^2 + N / (V_a V_b)) d)``, i.e. global attention divided by the
number of shards plus a local window.
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from ..ops.strided_sparse import s2_attention_2d
from ..ops.utils import IntPair, to_pair
from ..registry import MODELS


def default_vert_stride(num_heads: int, max_stride: int = 4):
    """As many shards as heads allow, squarest first, at most ``max_stride`` per axis:
    1 head -> (1, 1) (one head must see everything: global attention), 2 -> (1, 2),
    4 -> (2, 2), 8 -> (2, 4), 10 -> (3, 3), 16 or more -> (4, 4)."""
    va = min(max_stride, max(1, math.isqrt(num_heads)))
    vb = min(max_stride, max(1, num_heads // va))
    return va, vb


@MODELS.register_module()
class S2Attention2d(nn.Module):
    """Multi-head S2 (local + strided, sharded over heads) attention on a ``(B, C, H, W)`` map.

    Args:
        dim, num_heads: channels and heads.
        tile_size: tile side(s) (dkernel's ``block_size``: 64 tokens = 8 x 8).
        local_tiles: ``L``: key tiles within tile distance ``< L`` are local (dkernel's
            ``local_blocks``; 2 = the 3 x 3 tiles around the query's).
        vert_stride: ``(V_a, V_b)`` shards (dkernel's ``vert_stride``, per axis); default
            :func:`default_vert_stride`. Heads must be at least ``V_a V_b`` (so that they cover
            every tile); head ``h`` takes shard ``h mod V_a V_b``.
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, tile_size: IntPair = 8, local_tiles: int = 2,
                 vert_stride: Optional[IntPair] = None, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'S2Attention2d: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if local_tiles < 1:
            raise ValueError(f'S2Attention2d: local_tiles must be >= 1 (the own tile), got '
                             f'{local_tiles}')
        self.tile_size = to_pair(tile_size, 'tile_size')
        if min(self.tile_size) < 1:
            raise ValueError(f'S2Attention2d: tile_size must be positive, got {self.tile_size}')
        self.vert_stride = default_vert_stride(num_heads) if vert_stride is None else \
            to_pair(vert_stride, 'vert_stride')
        if min(self.vert_stride) < 1:
            raise ValueError(f'S2Attention2d: vert_stride must be positive, got '
                             f'{self.vert_stride}')
        shards = self.vert_stride[0] * self.vert_stride[1]
        if num_heads < shards:
            raise ValueError(f'S2Attention2d: {num_heads} heads cannot cover {shards} shards '
                             f'(vert_stride {self.vert_stride}); use num_heads >= {shards} or a '
                             f'smaller vert_stride')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.local_tiles = local_tiles
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                     # B heads H W d
        out = s2_attention_2d(q, k, v, self.tile_size, self.local_tiles, self.vert_stride)
        out = self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c))
        return self.proj_drop(out).permute(0, 3, 1, 2)
