"""Global multi-head self-attention (Vaswani et al., "Attention Is All You Need", arXiv 1706.03762,
Sec. 3.2.1, Eq. 1) on ``F.scaled_dot_product_attention``, and the explicit dense reference.

``global_attention`` is the speed limit every local pattern is compared with: ``O(N^2 d)`` time for
``N = H W`` tokens; with SDPA's fused CPU/GPU kernels its memory is ``O(N d)`` in the forward pass.

``dense_attention`` is the specification every exactness test uses: the softmax of ``q k^T * scale
+ bias`` with disallowed pairs set to ``-inf``, written out with no fused kernel, materialising the
``N x N`` logits (``O(N^2)`` memory; for small inputs only).
"""
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ['global_attention', 'dense_attention', 'few_key_attention']

# CPU training with at most this many keys per query: the written-out products beat SDPA's
# fused backward (FaViT's 49-key groups, 3800 queries x 10 heads x d 14, fwd+bwd, one thread:
# 13.8 ms written out, 19.3 ms SDPA; SDPA is ahead in the forward: 4.6 vs 5.4 ms)
FEW_KEYS = 64


def global_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     scale: Optional[float] = None,
                     attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Scaled dot-product attention over all tokens.

    Args:
        q, k: ``(..., N, d)``; v: ``(..., N_k, d_v)`` (e.g. ``(B, heads, N, d)``).
        scale: logit scale, default ``d ** -0.5``.
        attn_mask: optional bool (True = attend) or additive float mask broadcastable to
            ``(..., N, N_k)``.

    Returns:
        ``(..., N, d_v)``.
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
                    scale: Optional[float] = None) -> torch.Tensor:
    """Explicit softmax attention: ``softmax(q k^T * scale + bias, masked to -inf) v``.

    Args:
        q, k: ``(..., N, d)``; v: ``(..., N_k, d_v)``.
        mask: bool, broadcastable to ``(..., N, N_k)``; True = the pair is attended.
        bias: float, broadcastable to ``(..., N, N_k)``, added to the scaled logits.
        scale: default ``d ** -0.5``.

    Every row of ``mask`` must allow at least one key.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    logits = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = logits.masked_fill(~mask, float('-inf'))
    return torch.matmul(torch.softmax(logits, dim=-1), v)


def few_key_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      scale: Optional[float] = None) -> torch.Tensor:
    """:func:`global_attention` for queries that attend to few keys (``N_k <= FEW_KEYS``, e.g. a
    pooled or windowed key set): SDPA, except on the CPU under autograd, where the written-out
    ``softmax(q k^T * scale) v`` (the same numbers) runs its backward faster."""
    if q.device.type != 'cpu' or k.shape[-2] > FEW_KEYS or not torch.is_grad_enabled() or \
            not any(t.requires_grad for t in (q, k, v)):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return torch.matmul(torch.matmul(q * scale, k.transpose(-1, -2)).softmax(-1), v)
