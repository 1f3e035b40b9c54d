"""Global multi-head self-attention (Vaswani et al., arXiv 1706.03762, Sec. 3.2.2) over all
``N = H W`` tokens, on ``F.scaled_dot_product_attention``: ``O(N^2 C)`` time; the fused kernels
keep memory at ``O(N C)`` in inference. The speed limit every local mixer is compared with.

With ``sequence_parallel=True`` and a default process group of more than one process (the one
``tools/dist_train.sh`` starts through mmengine's launcher) whose processes hold the same images
(sequence parallelism: ``sampler=dict(type='ReplicatedInfiniteSampler')``), each process projects
and attends for its chunk of the tokens (ring attention, ``plugins/ops/ring_attention.py``) and
the chunks are gathered: the output is the unsharded mixer's on every process, to float rounding.
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
            when its processes hold the same images; otherwise (one process, or different
            images per process) the mixer attends unsharded, with the same result.
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
        tokens = x.flatten(2).transpose(1, 2)  # B N C
        if self.sequence_parallel:
            out = sequence_parallel_attention(tokens, self.project_qkv)
        else:
            out = global_attention(*self.project_qkv(tokens))  # B heads N d
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, h * w, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)

    def project_qkv(self, tokens: torch.Tensor):
        """``(B, n, C)`` -> ``q, k, v``, each ``(B, heads, n, C / heads)``."""
        b, n, _ = tokens.shape
        qkv = self.qkv(tokens).view(b, n, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)
