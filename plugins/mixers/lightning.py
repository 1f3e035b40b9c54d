"""Block-wise decayed linear attention as a 2-D token mixer. Paper: Qin et al., "Various Lengths,
Constant Speed: Efficient Language Modeling with Lightning Attention" (ICML 2024, arXiv 2405.17381).

Lightning attention splits causal linear attention into intra-block explicit products and an
inter-block key-value state (the kernel trick), which removes the cumulative sum; its algorithm is
that of Lightning Attention-2 (Qin et al., arXiv 2401.04658, Algorithm 1). The layer around it is
TransNormerLLM's (TNL, introduced with it), as the official example module
``examples/module/tnl_attn.py`` of OpenNLPLab/lightning-attention builds it: ``q, k, v = SiLU(W x)``
(no bias), per-head decay ``lambda_h = exp(-s_h)`` with ALiBi slopes ``s_h`` scaled by the layer
factor ``1 - l / (L - 1) + 1e-5``, no softmax and no denominator, a LayerNorm on the output, a
low-rank sigmoid output gate ``sigmoid(W_2 W_1 x)`` (rank = head_dim) and the output projection.

2-D, non-causal: the map is flattened in raster order and the causal mask
``M_ij = lambda^(i-j) [j <= i]`` becomes the symmetric ``M_ij = lambda^|i-j|``: the causal
Lightning pass plus its anti-causal mirror, both block-wise
(:func:`plugins.ops.lightning_attention.lightning_attention`). The decay thus follows the raster
distance, as the paper would on a flattened image: horizontal neighbours are 1 apart, vertical
ones ``W``, so heads with a strong decay are mostly row-local and heads with a weak one global.
Nothing is padded that a real token can see (padding to a block multiple adds zero keys).

Cost: ``O(N B d + N d^2)`` per head for blocks of ``B`` tokens: linear in tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.lightning_attention import lightning_attention
from ..registry import MODELS


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al., arXiv 2108.12409), as ``_build_slope_tensor`` of the
    Lightning Attention code: ``2^(-8 i / n)`` for ``n`` a power of two, interleaved otherwise."""
    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two(closest) + alibi_slopes(2 * closest).tolist()[0::2][
            :num_heads - closest]
    return torch.tensor(slopes)


@MODELS.register_module()
class LightningAttention(nn.Module):
    """Non-causal Lightning Attention-2 with TransNormerLLM's gate and norm, on a ``(B, C, H, W)``
    map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        block_size: tokens per block ``B`` (64 officially); the result does not depend on it.
        decay_scale: factor of the ALiBi slopes (TransNormerLLM's ``1 - l / (L - 1) + 1e-5``
            for layer ``l`` of ``L``; 1.0 = the first layer, the strongest decay; 0 = no decay).
        bias: bias of the projections (none officially).
    """

    def __init__(self, dim: int, num_heads: int = 8, block_size: int = 64,
                 decay_scale: float = 1.0, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'LightningAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if block_size < 1:
            raise ValueError(f'LightningAttention: block_size must be >= 1, got {block_size}')
        if decay_scale < 0:
            raise ValueError(f'LightningAttention: decay_scale must be >= 0, got {decay_scale}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.block_size, self.decay_scale = block_size, decay_scale
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.norm = nn.LayerNorm(dim)
        self.output_gate = nn.Sequential(nn.Linear(dim, self.head_dim, bias=bias),
                                          nn.Linear(self.head_dim, dim, bias=bias))
        self.o_proj = nn.Linear(dim, dim, bias=bias)
        self.register_buffer('slope_rate', alibi_slopes(num_heads) * decay_scale,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        t = x.flatten(2).transpose(1, 2)                                      # B N C
        q, k, v = F.silu(self.qkv(t)).view(b, n, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4)
        decay = torch.exp(-self.slope_rate.to(q.dtype))
        out = lightning_attention(q, k, v, decay, self.block_size, causal=False)
        out = self.norm(out.transpose(1, 2).reshape(b, n, c))
        out = self.o_proj(out * torch.sigmoid(self.output_gate(t)))
        return out.transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, block_size={self.block_size}, '
                f'decay_scale={self.decay_scale}')
