"""One softmax over several key sets, and padded window partitions with their validity masks.

Many designs that mix fine and coarse context (Combiner's direct keys plus region abstractions,
Block Transformer's window tokens plus the block's prefix, CCA-Attention's local tokens plus core
tokens) are *one* softmax over the union of a few key sets, each with its own mask:
``softmax([q K_1^T, q K_2^T, ...] * scale)`` split back and applied to ``[V_1, V_2, ...]``.
:func:`joint_softmax_attention` computes exactly that, without concatenating the keys (a shared key
set broadcasts over the windows instead of being copied per window).

:func:`padded_windows` cuts a ``(B, heads, H, W, d)`` map into ``wh x ww`` windows after zero
padding to window multiples, and returns which window slots hold real tokens, so that padded
tokens can be masked wherever they would otherwise leak into real tokens' results.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .window import window_merge, window_partition

__all__ = ['joint_softmax_attention', 'padded_windows', 'merge_padded_windows']

KeySet = Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


def _batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``; where ``b`` is shared along ``a``'s third-last dimension (size 1 there, e.g. one
    key set for all windows), that dimension is folded into the rows of ``a`` instead of
    broadcasting ``b`` (which would copy it once per window)."""
    if a.dim() == b.dim() >= 3 and b.shape[-3] == 1 < a.shape[-3] and \
            a.shape[:-3] == b.shape[:-3]:
        rows = a.reshape(*a.shape[:-3], a.shape[-3] * a.shape[-2], a.shape[-1])
        return torch.matmul(rows, b.squeeze(-3)).view(*a.shape[:-1], b.shape[-1])
    return torch.matmul(a, b)


def joint_softmax_attention(q: torch.Tensor, key_sets: Sequence[KeySet],
                            scale: float) -> torch.Tensor:
    """``softmax`` over the concatenated logits of several key sets, one distribution per query.

    Args:
        q: ``(..., Nq, d)``.
        key_sets: ``(k, v, mask)`` triples; ``k: (..., Nk, d)`` and ``v: (..., Nk, dv)`` broadcast
            against ``q``'s leading dimensions; ``mask``: bool broadcastable to ``(..., Nq, Nk)``
            (True = attend) or None.
        scale: logit scale.

    Every query must be allowed at least one key over all sets.

    Returns:
        ``(..., Nq, dv)``.
    """
    logits, sizes = [], []
    q = q * scale
    for k, _, mask in key_sets:
        logit = _batched_matmul(q, k.transpose(-1, -2))
        if mask is not None:  # in place on the fresh logits: the product's backward keeps q, k
            logit.masked_fill_(~mask, float('-inf'))
        logits.append(logit)
        sizes.append(k.shape[-2])
    probs = torch.softmax(torch.cat(logits, dim=-1), dim=-1).split(sizes, dim=-1)
    out = None
    for p, (_, v, _) in zip(probs, key_sets):
        term = _batched_matmul(p, v)
        out = term if out is None else out + term
    return out


def padded_windows(x: torch.Tensor, window: Tuple[int, int]):
    """Zero-pad a ``(B, heads, H, W, d)`` map (bottom/right) to window multiples and partition it.

    Returns:
        the windows ``(B, heads, nW, wh * ww, d)`` (row-major windows, row-major slots), and the
        bool validity of each slot ``(nW, wh * ww)`` (False = padding).
    """
    h, w = x.shape[2:4]
    wh, ww = window
    ph, pw = (-h) % wh, (-w) % ww
    x = F.pad(x, (0, 0, 0, pw, 0, ph)) if ph or pw else x.contiguous()
    valid = torch.zeros(1, 1, h + ph, w + pw, 1, dtype=torch.bool, device=x.device)
    valid[:, :, :h, :w] = True
    return window_partition(x, window), window_partition(valid, window)[0, 0, :, :, 0]


def merge_padded_windows(x: torch.Tensor, window: Tuple[int, int],
                         size: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`padded_windows`: ``(B, heads, nW, wh * ww, d) -> (B, heads, H, W, d)``."""
    h, w = size
    hp, wp = h + (-h) % window[0], w + (-w) % window[1]
    return window_merge(x, window, (hp, wp))[:, :, :h, :w]
