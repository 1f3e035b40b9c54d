"""Relative-position self-attention with memory-efficient skewing, 2-D: Music Transformer
(Huang et al., "Music Transformer", arXiv 1809.04281, Sec. 3.4 "memory efficient implementation",
Fig. 1) in the unmasked 2-D form of tensor2tensor's
``dot_product_unmasked_self_attention_relative_2d``.

For query ``(y, x)`` and key ``(y', x')`` the logit is
``(q . k + q . E^h[y' - y] + q . E^w[x' - x]) / sqrt(d)``, with one table of relative embeddings per
axis (``2 M - 1`` rows for offsets ``-(M-1) .. M-1``; offsets beyond ``M - 1`` get a zero
embedding, as tensor2tensor pads the table with zeros).

The gathered form (Shaw et al.) materialises an embedding per query-key pair: ``O(N^2 d)`` memory.
Skewing computes ``q . E`` against the ``2L - 1`` offsets of one axis (``O(N L d)`` work, ``O(N L)``
memory) and moves each entry to its absolute key position by a pad-reshape-slice
(:func:`relative_to_absolute`), with no gather. The width term is computed once per row of queries
and broadcast over key rows, the height term likewise per column: the extra memory is
``O(N (H + W))``; the ``N x N`` additive bias is built one chunk of queries at a time
(:func:`relative_attention_2d`).
"""
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ['relative_embeddings_for_length', 'relative_to_absolute', 'relative_terms_2d',
           'relative_logits_2d', 'relative_attention_2d']

_CHUNK_BIAS = 2 ** 23  # bias entries per chunk of queries (32 MB in fp32)


def relative_embeddings_for_length(table: torch.Tensor, length: int) -> torch.Tensor:
    """The rows of ``table`` for offsets ``-(L-1) .. L-1`` of an axis of length ``L``.

    ``table``: ``(heads, 2M - 1, d)``, row ``M - 1 + r`` for offset ``r``. Offsets ``|r| >= M`` get
    zeros (tensor2tensor's ``get_relative_embeddings_left_right``: pad, then slice). Returns
    ``(heads, 2L - 1, d)``.
    """
    m = (table.shape[-2] + 1) // 2
    pad = max(length - m, 0)
    start = max(m - length, 0)
    if pad:
        table = F.pad(table, (0, 0, pad, pad))
    return table[..., start:start + 2 * length - 1, :]


def relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """Skew ``(..., L, 2L - 1)`` logits indexed by offset to ``(..., L, L)`` indexed by key:
    ``out[..., i, j] = x[..., i, j - i + L - 1]`` (Music Transformer Fig. 1, unmasked variant):
    append a zero column, flatten, append ``L - 1`` zeros, view as ``(L + 1, 2L - 1)``, keep the
    first ``L`` rows and the last ``L`` columns."""
    *lead, length, _ = x.shape
    x = F.pad(x, (0, 1))                                          # ... L 2L
    x = F.pad(x.reshape(*lead, 2 * length * length), (0, length - 1))
    x = x.view(*lead, length + 1, 2 * length - 1)
    return x[..., :length, length - 1:]


def relative_terms_2d(q: torch.Tensor, table_h: torch.Tensor, table_w: torch.Tensor):
    """The two skewed relative terms of every query (unscaled).

    Args:
        q: ``(B, heads, H, W, d)``.
        table_h, table_w: ``(heads, 2M_h - 1, d)`` and ``(heads, 2M_w - 1, d)``.

    Returns:
        ``rel_h (B, heads, H W, H)``: ``q . E^h[y' - y]`` for each key row ``y'``, and
        ``rel_w (B, heads, H W, W)``: ``q . E^w[x' - x]`` for each key column ``x'``.
    """
    b, nh, h, w, _ = q.shape
    e_w = relative_embeddings_for_length(table_w, w).to(q.dtype)          # heads 2W-1 d
    e_h = relative_embeddings_for_length(table_h, h).to(q.dtype)          # heads 2H-1 d
    rel_w = relative_to_absolute(torch.einsum('bhyxd,hmd->bhyxm', q, e_w))  # B h H W(q) W(k)
    rel_h = relative_to_absolute(torch.einsum('bhyxd,hmd->bhxym', q, e_h))  # B h W H(q) H(k)
    return rel_h.transpose(2, 3).reshape(b, nh, h * w, h), rel_w.reshape(b, nh, h * w, w)


def relative_logits_2d(q: torch.Tensor, table_h: torch.Tensor,
                       table_w: torch.Tensor) -> torch.Tensor:
    """``q . E^h[y' - y] + q . E^w[x' - x]`` as a dense ``(B, heads, H W, H W)`` tensor (query
    row-major, key row-major), by broadcasting the two skewed terms."""
    b, nh, h, w, _ = q.shape
    rel_h, rel_w = relative_terms_2d(q, table_h, table_w)
    return (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, nh, h * w, h * w)


def relative_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          table_h: torch.Tensor, table_w: torch.Tensor,
                          scale: Optional[float] = None) -> torch.Tensor:
    """Global attention with the 2-D relative logits: ``softmax(scale (q . k + q . E^h[dy] +
    q . E^w[dx])) v``.

    q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``. The skewed terms are computed once
    (``O(N (H + W))``); the additive bias is then built for a chunk of queries at a time and
    passed to SDPA with that chunk, so that without autograd the extra memory stays at
    ``O(N (H + W))`` plus one chunk of ``_CHUNK_BIAS`` entries (with autograd each chunk's bias is
    kept for the backward pass: ``O(N^2)``, the size of the logits). Returns ``(B, heads, N, d_v)``.
    """
    b, nh, h, w, d = q.shape
    n = h * w
    scale = d ** -0.5 if scale is None else scale
    rel_h, rel_w = relative_terms_2d(q * scale, table_h, table_w)
    qf, kf, vf = (t.reshape(b, nh, n, t.shape[-1]) for t in (q, k, v))
    chunk = max(1, _CHUNK_BIAS // (b * nh * n))
    outs = []
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        bias = (rel_h[:, :, s:e, :, None] + rel_w[:, :, s:e, None, :]).flatten(-2)  # B h c N
        outs.append(F.scaled_dot_product_attention(qf[:, :, s:e], kf, vf, attn_mask=bias,
                                                   scale=scale))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
