"""BASED: second-order Taylor linear attention for global context plus a small sliding-window
softmax attention for precise local lookups, non-causal and 2-D.
Paper: Arora et al., "Simple linear attention language models balance the recall-throughput
tradeoff" (arXiv 2402.18668), Sec. 4: ``phi(q) . phi(k) = 1 + s + s^2 / 2`` (``s = q . k /
sqrt(d')``, ``d' = 16`` feature dims per head: 273 features) over all tokens, plus exact softmax
attention in a small sliding window. Released code (HazyResearch/based): ``LinearAttention``
(``proj_q``, ``proj_k`` to ``d'`` per head, ``proj_v``, ``out_proj``, all without bias, ``eps =
1e-12``) and ``SlidingAttention`` (``Wqkv``, ``out_proj`` with bias; flash-attention window).

2-D and non-causal: the linear branch sums over every key (no cumulative sum; see
:func:`plugins.ops.linear_attention.taylor_linear_attention`); the window is the centred
``k x k`` square cut at the borders (:func:`plugins.ops.band_attention.band_attention_2d`, the
2-D analogue of the flash window ``|i - j| <= w``). BASED interleaves the two kinds in separate
layers; one mixer here runs both branches on the same input and adds their outputs (a block of
this mixer holds both, as a BASED layer pair does).

Cost: ``O(N d'^2 d_v)`` for the linear branch (state ``273 x d_v`` per head), ``O(N k^2 d)`` for the
window: linear in tokens.
"""
import torch
import torch.nn as nn

from ..ops.linear_attention import taylor_linear_attention
from ..ops.band_attention import band_attention_2d
from ..ops.utils import IntPair, to_pair
from ..registry import MODELS


@MODELS.register_module()
class BasedAttention(nn.Module):
    """BASED's Taylor linear attention plus sliding-window attention on ``(B, C, H, W)``.

    Parameter names: ``proj_q``, ``proj_k``, ``proj_v``, ``out_proj`` (linear branch, BASED's
    ``LinearAttention``); ``window_qkv``, ``window_proj`` (``SlidingAttention``'s ``Wqkv``,
    ``out_proj``).

    Args:
        dim, num_heads: channels and heads (both branches; ``d_v = C / heads``).
        feature_dim: ``d'``, query/key dims per head of the linear branch (BASED: 16).
        window_size: odd side(s) of the sliding window (BASED: 64-128 tokens in 1-D; 7 x 7 = 49).
        eps: the linear branch's denominator epsilon.
        proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, feature_dim: int = 16,
                 window_size: IntPair = 7, eps: float = 1e-12, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'BasedAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if feature_dim < 1:
            raise ValueError(f'BasedAttention: feature_dim must be >= 1, got {feature_dim}')
        self.window_size = to_pair(window_size, 'window_size')
        if any(s < 1 or s % 2 == 0 for s in self.window_size):
            raise ValueError(f'BasedAttention: window_size must be odd (a centred window), got '
                             f'{self.window_size}')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.feature_dim, self.eps = feature_dim, eps
        self.proj_q = nn.Linear(dim, feature_dim * num_heads, bias=False)
        self.proj_k = nn.Linear(dim, feature_dim * num_heads, bias=False)
        self.proj_v = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.window_qkv = nn.Linear(dim, dim * 3)
        self.window_proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def linear_branch(self, t: torch.Tensor) -> torch.Tensor:
        """Taylor linear attention over all tokens: ``(B, N, C) -> (B, N, C)``."""
        b, n, c = t.shape
        q = self.proj_q(t).view(b, n, self.num_heads, -1).transpose(1, 2)   # B h N d'
        k = self.proj_k(t).view(b, n, self.num_heads, -1).transpose(1, 2)
        v = self.proj_v(t).view(b, n, self.num_heads, -1).transpose(1, 2)   # B h N dv
        y = taylor_linear_attention(q, k, v, self.eps)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, c))

    def window_branch(self, t: torch.Tensor, size) -> torch.Tensor:
        """Softmax attention in the sliding window: ``(B, N, C) -> (B, N, C)``."""
        b, n, c = t.shape
        h, w = size
        qkv = self.window_qkv(t).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                     # B h H W d
        y = band_attention_2d(q, k, v, (self.window_size[0] // 2, self.window_size[1] // 2))
        return self.window_proj(y.permute(0, 2, 3, 1, 4).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)                                      # B N C
        out = self.proj_drop(self.linear_branch(t) + self.window_branch(t, (h, w)))
        return out.transpose(1, 2).reshape(b, c, h, w)
