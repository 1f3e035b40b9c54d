"""Sliding-window attention in 2-D: every query attends to the keys within ``(kh // 2, kw // 2)``
of it, the window *cut* at the borders (fewer keys there), the 2-D analogue of the sliding window
``|i - j| <= w`` of flash-attention used by BASED (Arora et al., arXiv 2402.18668) and of the
"recent tokens" window RazorAttention keeps (Tang et al., arXiv 2407.15891). (NAT's neighborhood
attention, :mod:`plugins.ops.neighborhood`, shifts the window inward instead, so that every query
keeps ``k x k`` keys.)

Optionally each query also attends to one *extra* key of its own, with an additive logit bias:
RazorAttention's compensation token (the mean key and value of everything outside the window,
weighted by ``log m``, ``m`` = how many keys it stands for); :func:`window_complement_mean`
computes it with box sums.

How it is computed: queries in tiles of ``T x T``; each tile attends to its key rectangle
``(T + kh - 1) x (T + kw - 1)``, with a 0/1 mask that keeps each query's own window and the keys
inside the map; tiles are gathered and attended a chunk at a time. Cost ``O(N (T + k - 1)^2 / T^2
d)`` time per head, i.e. ``O(N k^2 d)``; memory one chunk of tiles (plus, under autograd, what the
backward pass keeps: ``O(N k^2)``); never ``N^2``.
"""
import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .utils import IntPair, to_pair

__all__ = ['sliding_window_attention_2d', 'sliding_window_mask', 'window_complement_mean']

_TILE = 8
_CHUNK_LOGITS = 2 ** 19  # logits entries per chunk of tiles


def _check_window(window: IntPair) -> Tuple[int, int]:
    kh, kw = to_pair(window, 'window_size')
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'window_size must be odd and positive (a centred window), got {(kh, kw)}')
    return kh, kw


def sliding_window_mask(size: Tuple[int, int], window: IntPair,
                        device=None) -> torch.Tensor:
    """Dense ``(N, N)`` bool mask of the pattern (True = attended), ``N = H W`` row-major: the
    specification the tiled computation is tested against (small maps only)."""
    kh, kw = _check_window(window)
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    return ((ys[:, None] - ys[None]).abs() <= kh // 2) & ((xs[:, None] - xs[None]).abs() <= kw // 2)


@functools.lru_cache(maxsize=32)
def _tables(h: int, w: int, window: Tuple[int, int], tile: int):
    """Index tables of the tiling: query token of every tile slot, key token of every rectangle
    slot (clamped where outside the map), the per-tile mask and the inverse (token -> slot)."""
    kh, kw = window
    rh, rw = kh // 2, kw // 2
    nth, ntw = -(-h // tile), -(-w // tile)
    ty = torch.arange(nth)[:, None, None, None]
    tx = torch.arange(ntw)[None, :, None, None]
    # query slots (y, x) of each tile, key slots (u, v) of each rectangle
    qy = ty * tile + torch.arange(tile)[None, None, :, None]          # nth 1 T 1
    qx = tx * tile + torch.arange(tile)[None, None, None, :]          # 1 ntw 1 T
    ky = ty * tile - rh + torch.arange(tile + kh - 1)[None, None, :, None]
    kx = tx * tile - rw + torch.arange(tile + kw - 1)[None, None, None, :]
    q_in = (qy < h) & (qx < w)                                        # nth ntw T T
    k_in = (ky >= 0) & (ky < h) & (kx >= 0) & (kx < w)                # nth ntw Ry Rx
    qtok = torch.where(q_in, qy.clamp(max=h - 1) * w + qx.clamp(max=w - 1), 0)
    ktok = torch.where(k_in, ky.clamp(0, h - 1) * w + kx.clamp(0, w - 1), 0)
    n_t = nth * ntw
    qtok, q_in = qtok.reshape(n_t, tile * tile), q_in.reshape(n_t, tile * tile)
    ktok, k_in = ktok.reshape(n_t, -1), k_in.reshape(n_t, -1)
    # key (u, v) of the rectangle is in the window of query (y, x) iff 0 <= u - y < kh, same for x
    dy = torch.arange(tile + kh - 1)[None, :] - torch.arange(tile)[:, None]
    dx = torch.arange(tile + kw - 1)[None, :] - torch.arange(tile)[:, None]
    in_win = ((dy >= 0) & (dy < kh))[:, None, :, None] & ((dx >= 0) & (dx < kw))[None, :, None, :]
    in_win = in_win.reshape(tile * tile, -1)
    # padded query slots keep every key of the rectangle, so that no softmax row is empty
    mask = (in_win[None] | ~q_in[:, :, None]) & k_in[:, None, :]      # nT T^2 R
    slots = torch.arange(n_t * tile * tile).view(n_t, tile * tile)
    inverse = torch.empty(h * w, dtype=torch.long)
    inverse[qtok[q_in]] = slots[q_in]
    return qtok.reshape(-1), ktok.reshape(-1), mask, inverse


def sliding_window_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                window_size: IntPair, scale: Optional[float] = None,
                                extra_key: Optional[torch.Tensor] = None,
                                extra_value: Optional[torch.Tensor] = None,
                                extra_bias: Optional[torch.Tensor] = None,
                                tile: int = _TILE) -> torch.Tensor:
    """Softmax attention of every query over the keys of its centred ``kh x kw`` window (cut at
    the borders), plus optionally one extra key per query.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``.
        window_size: odd ``k`` or ``(kh, kw)``.
        scale: logit scale, default ``d ** -0.5``.
        extra_key, extra_value: optional ``(B, heads, H, W, d)`` / ``(..., d_v)``: query ``i``'s
            own extra key and value (RazorAttention's compensation token), with logit
            ``scale q_i . extra_key_i + extra_bias_i``.
        extra_bias: ``(B or 1, heads or 1, H, W)`` additive logit of the extra key (``-inf``
            drops it); required with ``extra_key``.
        tile: query tile side.

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    if q.dim() != 5 or k.shape[:-1] != q.shape[:-1] or v.shape[:-1] != q.shape[:-1]:
        raise ValueError('q, k, v must be (B, heads, H, W, d) with equal leading dims, got '
                         f'{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}')
    if (extra_key is None) != (extra_value is None) or (extra_key is None) != (extra_bias is None):
        raise ValueError('extra_key, extra_value and extra_bias go together')
    window = _check_window(window_size)
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    scale = d ** -0.5 if scale is None else scale
    qtok, ktok, mask, inverse = _tables(h, w, window, tile)
    dev = q.device
    n_t, tt, n_r = mask.shape
    bh = b * nh
    base = torch.arange(bh, device=dev)[:, None, None] * (h * w)
    qidx = qtok.to(dev).view(1, n_t, tt) + base                           # bh nT T^2
    kidx = ktok.to(dev).view(1, n_t, n_r) + base                          # bh nT R
    outside = ~mask.to(dev)                                                # nT T^2 R
    flat = [t.reshape(bh * h * w, t.shape[-1]) for t in (q, k, v)]
    if extra_key is not None:
        flat += [extra_key.reshape(bh * h * w, d), extra_value.reshape(bh * h * w, dv),
                 extra_bias.expand(b, nh, h, w).reshape(bh * h * w, 1)]

    def gather(t, idx):  # rows of the chunk's tiles: (bh, tiles, slots, dim)
        return t.index_select(0, idx.reshape(-1)).view(*idx.shape, t.shape[-1])

    # tiles in chunks, each gathered, attended and released: memory O(chunk), not O(N k^2)
    chunk = max(1, _CHUNK_LOGITS // (bh * tt * n_r))
    outs = []
    for s in range(0, n_t, chunk):
        e = min(s + chunk, n_t)
        qi, ki = qidx[:, s:e], kidx[:, s:e]
        qt = gather(flat[0], qi) * scale
        logits = torch.matmul(qt, gather(flat[1], ki).transpose(-1, -2))
        logits = logits.masked_fill(outside[s:e], float('-inf'))
        vt = gather(flat[2], ki)
        if extra_key is None:
            outs.append(torch.matmul(torch.softmax(logits, dim=-1), vt))
            continue
        extra = (qt * gather(flat[3], qi)).sum(-1, keepdim=True) + gather(flat[5], qi)
        attn = torch.softmax(torch.cat([logits, extra], dim=-1), dim=-1)
        outs.append(torch.matmul(attn[..., :-1], vt) + attn[..., -1:] * gather(flat[4], qi))
    out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]             # bh nT T^2 dv
    out = out.reshape(bh, n_t * tt, dv).index_select(1, inverse.to(dev))
    return out.view(b, nh, h, w, dv)


def window_complement_mean(x: torch.Tensor, window_size: IntPair
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``x`` over the tokens *outside* each token's centred window, and their count.

    Args:
        x: ``(B, heads, H, W, d)``.
        window_size: odd ``k`` or ``(kh, kw)`` (the window of :func:`sliding_window_attention_2d`).

    Returns:
        ``(mean, count)``: ``(B, heads, H, W, d)`` (zero where the window covers the map) and
        ``(H, W)`` float counts ``m = H W - |window|``. Box sums (``avg_pool2d`` with divisor 1,
        zero padding) give the window sums in ``O(N k^2 d)``; the complement is total minus window.
    """
    kh, kw = _check_window(window_size)
    b, nh, h, w, d = x.shape
    t = x.permute(0, 1, 4, 2, 3).reshape(b * nh, d, h, w)
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
    count = h * w - F.avg_pool2d(ones, (kh, kw), stride=1, padding=(kh // 2, kw // 2),
                                 divisor_override=1)[0, 0]
    # (total - window sum) / count, in place on the pooled copy (avg_pool2d's backward does not
    # read its output)
    mean = F.avg_pool2d(t, (kh, kw), stride=1, padding=(kh // 2, kw // 2), divisor_override=1)
    mean = mean.neg_().add_(t.sum(dim=(-2, -1), keepdim=True)).div_(count.clamp_min(1))
    return mean.view(b, nh, d, h, w).permute(0, 1, 3, 4, 2), count
