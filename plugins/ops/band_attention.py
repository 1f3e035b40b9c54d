"""Banded (sliding-window) attention in 2-D: each query attends to the keys within a Chebyshev
distance ``r`` of it, ``|dy| <= r_h`` and ``|dx| <= r_w``, truncated at the borders of the map.

This is the 2-D form of the banded local attention of sequence models (``|i - j| <= l``): the
local heads of LS-attention (Hajra, arXiv 2505.15548), BASED's sliding window (Arora et al., arXiv
2402.18668, flash-attention's ``window_size``) and the "recent tokens" RazorAttention keeps (Tang
et al., arXiv 2407.15891). Near a border a query sees fewer keys, unlike NAT's neighbourhoods,
which shift inward to keep ``k x k`` keys
(:func:`plugins.ops.neighborhood.neighborhood_attention_2d`).

Optionally each query also attends to one *extra* key of its own, with an additive logit bias:
RazorAttention's compensation token (the mean key and value of everything outside the band,
weighted by ``log m``, ``m`` = how many keys it stands for); :func:`band_complement_mean`
computes it with box sums.

How it is computed: queries in ``Th x Tw`` tiles; each tile attends to the
``(Th + 2 r_h) x (Tw + 2 r_w)`` rectangle of keys around it, with a mask that keeps each query's
band and the keys inside the map. Tiles are gathered (one ``index_select`` of rows from tables
built once per shape) and attended a chunk at a time. Cost ``O(H W (Th + 2r)(Tw + 2r) d)`` time,
i.e. ``O(H W r^2 d)``; memory one chunk of tiles (plus, under autograd, what the backward pass
keeps: ``O(H W r^2)``); never ``(H W)^2``.
"""
import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .utils import IntPair, to_pair

__all__ = ['band_attention_2d', 'band_mask', 'band_complement_mean']

_CHUNK_LOGITS = 2 ** 19  # logits entries per chunk of tiles


def _radius(radius: IntPair) -> Tuple[int, int]:
    rh, rw = to_pair(radius, 'radius')
    if rh < 0 or rw < 0:
        raise ValueError(f'radius must be >= 0, got {(rh, rw)}')
    return rh, rw


def band_mask(size: Tuple[int, int], radius: IntPair, device=None) -> torch.Tensor:
    """Dense ``(N, N)`` bool mask of the band (True = attended), ``N = H W`` row-major: the
    specification; for small maps only."""
    rh, rw = _radius(radius)
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    return ((ys[:, None] - ys[None]).abs() <= rh) & ((xs[:, None] - xs[None]).abs() <= rw)


@functools.lru_cache(maxsize=32)
def _tables(size: Tuple[int, int], radius: Tuple[int, int], tile: Tuple[int, int]):
    """Token of every query slot and key slot of every tile (clamped where outside the map), the
    mask ``(nT, Th Tw, Kh Kw)`` and the inverse (token -> query slot)."""
    h, w = size
    rh, rw = radius
    th, tw = tile
    kh, kw = th + 2 * rh, tw + 2 * rw
    nth, ntw = -(-h // th), -(-w // tw)
    ty = torch.arange(nth)[:, None, None, None] * th
    tx = torch.arange(ntw)[None, :, None, None] * tw
    qy, qx = ty + torch.arange(th)[None, None, :, None], tx + torch.arange(tw)[None, None, None, :]
    ky = ty - rh + torch.arange(kh)[None, None, :, None]
    kx = tx - rw + torch.arange(kw)[None, None, None, :]
    q_in = (qy < h) & (qx < w)                                            # nth ntw Th Tw
    k_in = (ky >= 0) & (ky < h) & (kx >= 0) & (kx < w)                    # nth ntw Kh Kw
    qtok = torch.where(q_in, qy.clamp(max=h - 1) * w + qx.clamp(max=w - 1), 0)
    ktok = torch.where(k_in, ky.clamp(0, h - 1) * w + kx.clamp(0, w - 1), 0)
    n_t = nth * ntw
    qtok, q_in = qtok.reshape(n_t, th * tw), q_in.reshape(n_t, th * tw)
    ktok, k_in = ktok.reshape(n_t, kh * kw), k_in.reshape(n_t, kh * kw)
    # query slot (i, j) and key slot (u, v) of a rectangle are (u - rh - i, v - rw - j) apart
    dy = torch.arange(kh)[None, :] - rh - torch.arange(th)[:, None]      # Th Kh
    dx = torch.arange(kw)[None, :] - rw - torch.arange(tw)[:, None]      # Tw Kw
    band = (dy.abs() <= rh)[:, None, :, None] & (dx.abs() <= rw)[None, :, None, :]
    band = band.reshape(th * tw, kh * kw)
    # padded query slots keep every key of the rectangle, so that no softmax row is empty
    mask = (band[None] | ~q_in[:, :, None]) & k_in[:, None, :]
    slots = torch.arange(n_t * th * tw).view(n_t, th * tw)
    inverse = torch.empty(h * w, dtype=torch.long)
    inverse[qtok[q_in]] = slots[q_in]
    return qtok, ktok, mask, inverse


def band_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, radius: IntPair,
                      scale: Optional[float] = None, tile: IntPair = 8,
                      extra_key: Optional[torch.Tensor] = None,
                      extra_value: Optional[torch.Tensor] = None,
                      extra_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Banded 2-D attention, optionally with one extra key per query.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``; any H, W.
        radius: ``r`` or ``(r_h, r_w)``: keys with ``|dy| <= r_h`` and ``|dx| <= r_w`` are attended
            (a ``(2r+1) x (2r+1)`` window centred on the query, truncated at the borders).
        scale: logit scale, default ``d ** -0.5``.
        tile: query tile per axis (clamped to the map).
        extra_key, extra_value: optional ``(B, heads, H, W, d)`` / ``(..., d_v)``: query ``i``'s
            own extra key and value (RazorAttention's compensation token), with logit
            ``scale q_i . extra_key_i + extra_bias_i``.
        extra_bias: ``(B or 1, heads or 1, H, W)`` additive logit of the extra key (``-inf``
            drops it); required with ``extra_key``.

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    if q.dim() != 5 or k.shape[:-1] != q.shape[:-1] or v.shape[:-1] != q.shape[:-1]:
        raise ValueError('q, k, v must be (B, heads, H, W, d) with equal leading dims, got '
                         f'{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}')
    if (extra_key is None) != (extra_value is None) or (extra_key is None) != (extra_bias is None):
        raise ValueError('extra_key, extra_value and extra_bias go together')
    rh, rw = _radius(radius)
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    scale = d ** -0.5 if scale is None else scale
    tile = tuple(min(t, s) for t, s in zip(to_pair(tile, 'tile'), (h, w)))
    qtok, ktok, mask, inverse = _tables((h, w), (rh, rw), tile)
    dev = q.device
    n_t, tt, n_k = mask.shape
    bh = b * nh
    base = torch.arange(bh, device=dev)[:, None, None] * (h * w)
    qidx = qtok.to(dev)[None] + base                                      # bh nT Th*Tw
    kidx = ktok.to(dev)[None] + base                                      # bh nT Kh*Kw
    outside = ~mask.to(dev)
    flat = [t.reshape(bh * h * w, t.shape[-1]) for t in (q, k, v)]
    if extra_key is not None:
        flat += [extra_key.reshape(bh * h * w, d), extra_value.reshape(bh * h * w, dv),
                 extra_bias.expand(b, nh, h, w).reshape(bh * h * w, 1)]

    def gather(t, idx):  # rows of the chunk's tiles: (bh, tiles, slots, dim)
        return t.index_select(0, idx.reshape(-1)).view(*idx.shape, t.shape[-1])

    # tiles in chunks, each gathered, attended and released: memory O(chunk)
    chunk = max(1, _CHUNK_LOGITS // (bh * tt * n_k))
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
    out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]             # bh nT Th*Tw dv
    out = out.reshape(bh, n_t * tt, dv).index_select(1, inverse.to(dev))
    return out.view(b, nh, h, w, dv)


def band_complement_mean(x: torch.Tensor, radius: IntPair) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``x`` over the tokens *outside* each token's band, and their count.

    Args:
        x: ``(B, heads, H, W, d)``.
        radius: the band of :func:`band_attention_2d`.

    Returns:
        ``(mean, count)``: ``(B, heads, H, W, d)`` (zero where the band covers the map) and
        ``(H, W)`` float counts ``m = H W - |band|``. Box sums (``avg_pool2d`` with divisor 1,
        zero padding) give the band sums in ``O(N r^2 d)``; the complement is total minus band.
    """
    rh, rw = _radius(radius)
    b, nh, h, w, d = x.shape
    t = x.permute(0, 1, 4, 2, 3).reshape(b * nh, d, h, w)
    pool = dict(kernel_size=(2 * rh + 1, 2 * rw + 1), stride=1, padding=(rh, rw),
                divisor_override=1)
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
    count = h * w - F.avg_pool2d(ones, **pool)[0, 0]
    # (total - band sum) / count, in place on the pooled copy (avg_pool2d's backward does not
    # read its output)
    mean = F.avg_pool2d(t, **pool).neg_().add_(t.sum(dim=(-2, -1), keepdim=True))
    mean = mean.div_(count.clamp_min(1))
    return mean.view(b, nh, d, h, w).permute(0, 1, 3, 4, 2), count
