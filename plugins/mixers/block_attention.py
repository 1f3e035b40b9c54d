"""Global-to-local attention as a 2-D token mixer. Paper: Ho, Bae et al., "Block Transformer:
Global-to-Local Language Modeling for Fast Inference" (NeurIPS 2024, arXiv 2406.02657).

The paper's embedder, block decoder and token decoder in one mixer. Official code:
itsnamgyu/block-transformer (``model/embedder/lookup.py``: a block embedding is the concatenation
of its tokens' embeddings; ``model/token_decoder/base.py``: the ``prefix`` strategy, where a
``Conv1d`` (``expansion_layer``) expands each block's context into ``expansion_ratio`` prefix
tokens prepended to the block's tokens).

As one mixer, on ``p_h x p_w`` blocks (windows) of the map:

1. block embedding ``e_b = W_e [x_1; ...; x_{p^2}]`` (the lookup embedder's concatenation; or the
   mean of the block's tokens with ``block_embed='mean'``);
2. global stage: self-attention among the block embeddings, ``g_b = e_b + Attn(e)_b`` (one layer
   of the block decoder, with its residual);
3. prefix: ``r`` tokens ``[P_b1, ..., P_br] = W_x g_b`` (the expansion layer);
4. local stage: each block's tokens attend to ``[prefix_b; tokens_b]`` (the token decoder's
   self-attention over its input sequence); the prefix outputs are not needed.

Non-causal: the block decoder attends to every block and the token decoder of a block reads its
*own* block's context (the language model's one-block shift exists only for next-block
prediction). Any H, W: the map is zero-padded to block multiples; padded tokens are masked as
keys and contribute nothing to a block embedding (zeros in the concatenation, excluded from the
mean), and their outputs are cropped.

Cost: ``O((N / p^2)^2 C)`` global plus ``O(N (p^2 + r) C)`` local; logits memory
``O((N / p^2)^2 + N (p^2 + r))``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.joint_attention import merge_padded_windows, padded_windows
from ..ops.utils import to_pair
from ..registry import MODELS


@MODELS.register_module()
class BlockGlobalLocalAttention(nn.Module):
    """Global-to-local attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads of both stages (C divisible by it).
        block_size: block side(s) ``p`` (2: 2 x 2 = 4 tokens, the paper's main block length 4).
        num_prefix: prefix tokens ``r`` per block (the token decoder's ``expansion_ratio``).
        block_embed: ``'concat'`` (the paper's lookup embedder: ``Linear(p^2 C -> C)`` of the
            concatenated tokens) or ``'mean'`` (mean of the block's tokens, no parameters).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, block_size=2, num_prefix: int = 2,
                 block_embed: str = 'concat', qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'BlockGlobalLocalAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if block_embed not in ('concat', 'mean'):
            raise ValueError(f"BlockGlobalLocalAttention: block_embed must be 'concat' or 'mean', "
                             f'got {block_embed!r}')
        if num_prefix < 1:
            raise ValueError(f'BlockGlobalLocalAttention: num_prefix must be >= 1, '
                             f'got {num_prefix}')
        self.block_size = to_pair(block_size, 'block_size')
        if min(self.block_size) < 1:
            raise ValueError(f'BlockGlobalLocalAttention: block_size must be >= 1, '
                             f'got {self.block_size}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.num_prefix, self.block_embed = num_prefix, block_embed
        area = self.block_size[0] * self.block_size[1]
        self.embed = nn.Linear(area * dim, dim) if block_embed == 'concat' else None
        self.global_qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.global_proj = nn.Linear(dim, dim)
        self.expand = nn.Linear(dim, num_prefix * dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, nB, L, heads * d) -> (B, heads, nB, L, d)``."""
        b, nb, length, _ = t.shape
        return t.reshape(b, nb, length, self.num_heads, self.head_dim).permute(0, 3, 1, 2, 4)

    def block_context(self, blocks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Global stage: ``(B, nB, p^2, C)`` zero-padded blocks -> ``(B, nB, C)`` contexts."""
        b, nb, area, c = blocks.shape
        if self.embed is not None:
            e = self.embed(blocks.reshape(b, nb, area * c))
        else:
            e = blocks.sum(2) / valid.sum(-1, keepdim=True).to(blocks.dtype)
        q, k, v = self.global_qkv(e).view(b, nb, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4)
        g = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, nb, c)
        return e + self.global_proj(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # zero-padded blocks: (B, 1, nB, p^2, C), validity (nB, p^2)
        blocks, valid = padded_windows(x.permute(0, 2, 3, 1).unsqueeze(1), self.block_size)
        blocks = blocks[:, 0]
        nb, area = valid.shape
        prefix = self.expand(self.block_context(blocks, valid)).view(b, nb, self.num_prefix, c)
        q, k, v = (self._heads(t) for t in self.qkv(blocks).chunk(3, dim=-1))
        # the prefix tokens are keys and values only (their outputs are never used)
        bias = None if self.qkv.bias is None else self.qkv.bias[c:]
        kp, vp = (self._heads(t) for t in F.linear(prefix, self.qkv.weight[c:], bias).chunk(2, -1))
        # one softmax over [block tokens; block prefix]; padded tokens are never keys
        key_valid = torch.cat([valid, valid.new_ones(nb, self.num_prefix)], -1)[:, None, :]
        out = F.scaled_dot_product_attention(q, torch.cat([k, kp], -2), torch.cat([v, vp], -2),
                                             attn_mask=key_valid)
        out = merge_padded_windows(out.permute(0, 2, 3, 1, 4).reshape(b, 1, nb, area, c),
                                   self.block_size, (h, w))[:, 0]
        out = self.proj_drop(self.proj(out))
        return out.permute(0, 3, 1, 2)
