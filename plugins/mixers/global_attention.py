"""Global multi-head self-attention (Vaswani et al., arXiv 1706.03762, Sec. 3.2.2) over all
``N = H W`` tokens, on ``F.scaled_dot_product_attention``: ``O(N^2 C)`` time; the fused kernels
keep memory at ``O(N C)`` in inference. The speed limit every local mixer is compared with.
"""
import torch
import torch.nn as nn

from ..ops.global_attention import global_attention
from ..registry import MODELS


@MODELS.register_module()
class GlobalSelfAttention(nn.Module):
    """Multi-head self-attention on a ``(B, C, H, W)`` map (ViT's ``Attention``: ``qkv``, ``proj``).

    Args:
        dim: channels C; num_heads: heads (C divisible by it); qkv_bias; proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'GlobalSelfAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2))  # B N 3C
        q, k, v = qkv.view(b, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = global_attention(q, k, v)  # B heads N d
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, h * w, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)
