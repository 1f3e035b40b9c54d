"""Global self-attention with 2-D relative position embeddings, computed by Music Transformer's
memory-efficient skewing.
Paper: Huang et al., "Music Transformer: Generating Music with Long-Term Structure" (arXiv
1809.04281, Sec. 3.4 and Fig. 1), relative attention of Shaw et al. (arXiv 1803.02155); the 2-D
unmasked form is tensor2tensor's ``dot_product_unmasked_self_attention_relative_2d``: separate
height and width tables ``E^h, E^w`` of ``2 M - 1`` embeddings per head (``M`` =
``max_relative_position``; offsets beyond ``M - 1`` get zero embeddings), initialised with std
``d^-1/2``; logits ``(q . k + q . E^h[dy] + q . E^w[dx]) / sqrt(d)`` (tensor2tensor scales ``q``
before both products).

Non-causal: Music Transformer's masked (causal) skew is for sequences; images use the unmasked
form. Cost ``O(N^2 d)`` time (global attention); memory ``O(N (H + W))`` for the skewed terms
plus the additive bias, built one chunk of queries at a time (inference: one chunk; training:
kept for the backward pass, ``O(N^2)`` like the logits), against ``O(N^2 d)`` for the gathered
per-pair embeddings (see ``benchmarks/mixer_cases/relative_attention.py``).
"""
import torch
import torch.nn as nn

from ..ops.relative_attention import relative_attention_2d
from ..registry import MODELS


@MODELS.register_module()
class RelativeSelfAttention2d(nn.Module):
    """Multi-head global attention with 2-D relative key embeddings on ``(B, C, H, W)``.

    Args:
        dim, num_heads: channels and heads.
        max_relative_position: ``M``: offsets ``|dy|, |dx| < M`` have an embedding.
        heads_share_relative_embedding: one table for all heads (tensor2tensor's option).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, max_relative_position: int = 32,
                 heads_share_relative_embedding: bool = False, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'RelativeSelfAttention2d: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if max_relative_position < 1:
            raise ValueError('RelativeSelfAttention2d: max_relative_position must be >= 1, got '
                             f'{max_relative_position}')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.max_relative_position = max_relative_position
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        tables = 1 if heads_share_relative_embedding else num_heads
        shape = (tables, 2 * max_relative_position - 1, self.head_dim)
        std = self.head_dim ** -0.5
        self.height_key_relative_embeddings = nn.Parameter(torch.randn(shape) * std)
        self.width_key_relative_embeddings = nn.Parameter(torch.randn(shape) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                     # B heads H W d
        shape = (self.num_heads, -1, self.head_dim)
        out = relative_attention_2d(q, k, v, self.height_key_relative_embeddings.expand(shape),
                                    self.width_key_relative_embeddings.expand(shape))  # B h N d
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)
