"""Bi-level routing attention mixer (BiFormer: Zhu et al., arXiv 2303.08810, Sec. 3.2, Eq. 1-5,
with LePE, the local context enhancement of Sec. 3.2 / Fig. 2).

``S x S`` regions; every region routes to its ``topk`` most related regions and its tokens attend
to theirs; a depth-wise convolution on V (LePE) is added. Cost: ``O(S^4 C)`` routing plus
``O(H W topk (H W / S^2) C)`` attention.
"""
import torch
import torch.nn as nn

from ..ops.routing import bilevel_routing_attention
from ..ops.utils import pad_to_multiple
from ..registry import MODELS


class _QKVLinear(nn.Module):
    """``qkv``: ``dim -> 2 qk_dim + dim`` (official name ``qkv.qkv``)."""

    def __init__(self, dim, qk_dim, bias=True):
        super().__init__()
        self.qkv = nn.Linear(dim, 2 * qk_dim + dim, bias=bias)


@MODELS.register_module()
class BiLevelRoutingAttention(nn.Module):
    """BiFormer's bi-level routing attention on a ``(B, C, H, W)`` map, any H, W.

    Like the official ``auto_pad=True``, the input is zero-padded to multiples of ``n_win``
    *before* the projections, and the output cropped. Parameter names ``qkv.qkv``, ``wo``, ``lepe``
    follow the official checkpoints.

    Args:
        dim, num_heads.
        n_win: regions per side ``S`` (7 in BiFormer).
        topk: routed regions (BiFormer-T: 1, 4, 16 by stage; clamped to ``S^2``).
        qk_dim: q/k channels, default ``dim``.
        qk_scale: default ``qk_dim ** -0.5`` (the official scale uses all heads' channels).
        side_dwconv: LePE kernel (5; 0 disables it).
        qkv_bias.
    """

    def __init__(self, dim: int, num_heads: int = 8, n_win: int = 7, topk: int = 4,
                 qk_dim=None, qk_scale=None, side_dwconv: int = 5, qkv_bias: bool = True):
        super().__init__()
        self.qk_dim = qk_dim or dim
        if dim % num_heads or self.qk_dim % num_heads:
            raise ValueError(f'BiLevelRoutingAttention: dim ({dim}) and qk_dim ({self.qk_dim}) '
                             f'must be divisible by num_heads ({num_heads})')
        self.dim, self.num_heads, self.n_win, self.topk = dim, num_heads, n_win, topk
        self.scale = qk_scale or self.qk_dim ** -0.5
        self.qkv = _QKVLinear(dim, self.qk_dim, qkv_bias)
        self.wo = nn.Linear(dim, dim)
        self.lepe = (nn.Conv2d(dim, dim, side_dwconv, padding=side_dwconv // 2, groups=dim)
                     if side_dwconv > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x, _ = pad_to_multiple(x.permute(0, 2, 3, 1), self.n_win, dims=(1, 2))  # B Hp Wp C
        hp, wp = x.shape[1:3]
        nh = self.num_heads
        q, k, v = self.qkv.qkv(x).split([self.qk_dim, self.qk_dim, self.dim], dim=-1)

        def heads(t):  # B Hp Wp (heads d) -> B heads Hp Wp d
            return t.view(b, hp, wp, nh, -1).permute(0, 3, 1, 2, 4)

        out = bilevel_routing_attention(heads(q), heads(k), heads(v), self.n_win, self.topk,
                                        scale=self.scale)
        out = out.permute(0, 2, 3, 1, 4).reshape(b, hp, wp, c)
        if self.lepe is not None:
            out = out + self.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        out = self.wo(out)[:, :h, :w]
        return out.permute(0, 3, 1, 2)
