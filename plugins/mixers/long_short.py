"""Local heads and global heads in one layer (LS-attention) as a 2-D token mixer. Paper: Hajra,
"Short-Range Dependency Effects on Transformer Instability and a Decomposed Attention Solution"
(arXiv 2505.15548).

Multi-head self-attention whose heads are split in one layer: *local* (short-range) heads attend
within a band ``|i - j| <= l`` around the query, and a small number of *global* (long-range) heads
attend to every token; the heads are concatenated and projected as in MHSA. The paper finds that
dense short-range dependencies make full attention's logits grow (training instability) and that
giving them to dedicated local heads avoids it. No official code is public.

2-D, non-causal: the band becomes a ``(2r+1) x (2r+1)`` window centred on the query,
``|dy| <= r`` and ``|dx| <= r``, truncated at the borders as a sequence band is at its ends
(:func:`plugins.ops.band_attention.band_attention_2d`); global heads use SDPA over all tokens.
Any H, W, nothing padded that a real query can see.

Cost: ``O(N (h_l (2r+1)^2 + h_g N) d)`` for ``h_l`` local and ``h_g`` global heads of ``d``
channels: linear in tokens for the local heads, quadratic for the global ones.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.band_attention import band_attention_2d
from ..registry import MODELS


@MODELS.register_module()
class LongShortAttention(nn.Module):
    """LS-attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        num_global_heads: long-range heads, the last ones; None = ``max(1, num_heads // 4)``
            (a small number, as in the paper); the others are local.
        local_radius: ``r`` of the local heads' ``(2r+1) x (2r+1)`` band.
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, num_global_heads: Optional[int] = None,
                 local_radius: int = 3, qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'LongShortAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        glob = max(1, num_heads // 4) if num_global_heads is None else num_global_heads
        if not 0 <= glob <= num_heads:
            raise ValueError(f'LongShortAttention: num_global_heads must be in [0, num_heads = '
                             f'{num_heads}], got {glob}')
        if local_radius < 0:
            raise ValueError(f'LongShortAttention: local_radius must be >= 0, got {local_radius}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.num_global_heads, self.num_local_heads = glob, num_heads - glob
        self.local_radius = local_radius
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                     # B heads H W d
        nl = self.num_local_heads
        outs = []
        if nl:
            outs.append(band_attention_2d(q[:, :nl], k[:, :nl], v[:, :nl], self.local_radius))
        if self.num_global_heads:
            qg, kg, vg = (t[:, nl:].reshape(b, -1, h * w, self.head_dim) for t in (q, k, v))
            outs.append(F.scaled_dot_product_attention(qg, kg, vg).view(
                b, -1, h, w, self.head_dim))
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]           # B heads H W d
        out = self.proj_drop(self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)))
        return out.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, local_heads={self.num_local_heads}, '
                f'global_heads={self.num_global_heads}, local_radius={self.local_radius}')
