"""Global multi-head self-attention (Vaswani et al., arXiv 1706.03762, Sec. 3.2.2) over all
``N = H W`` tokens, on ``F.scaled_dot_product_attention``: ``O(N^2 C)`` time; the fused kernels
keep memory at ``O(N C)`` in inference. The speed limit every local mixer is compared with.

With ``sequence_parallel=True`` and a default process group of more than one process (the one that
``tools/dist_train.sh`` starts through mmengine's launcher), the attention runs as ring
self-attention (``plugins/ops/ring_attention.py``): every image's tokens are sharded over the
processes, each computes ``1/P`` of the ``O(N^2)`` work, and the result comes back to the image's
process, so the mixer returns what the unsharded mixer returns (to float rounding).
"""
import torch
import torch.nn as nn

from ..ops.global_attention import global_attention
from ..ops.ring_attention import sequence_parallel_attention
from ..registry import MODELS


@MODELS.register_module()
class GlobalSelfAttention(nn.Module):
    """Multi-head self-attention on a ``(B, C, H, W)`` map (ViT's ``Attention``: ``qkv``, ``proj``).

    Args:
        dim: channels C; num_heads: heads (C divisible by it); qkv_bias; proj_drop.
        sequence_parallel: shard the tokens over the default process group (ring attention)
            when one of more than one process is initialised; without one it changes nothing.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 proj_drop: float = 0.0, sequence_parallel: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'GlobalSelfAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sequence_parallel = sequence_parallel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2))  # B N 3C
        q, k, v = qkv.view(b, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attention = sequence_parallel_attention if self.sequence_parallel else global_attention
        out = attention(q, k, v)  # B heads N d
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, h * w, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)
