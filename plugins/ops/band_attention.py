"""Banded (sliding-window) attention in 2-D: each query attends to the keys within a Chebyshev
distance ``r`` of it, ``|dy| <= r_h`` and ``|dx| <= r_w``, truncated at the borders of the map.

This is the 2-D form of the banded local attention of sequence models (``|i - j| <= l``, e.g. the
local heads of LS-attention, Hajra, arXiv 2505.15548): near a border a query sees fewer keys,
unlike NAT's neighbourhoods, which shift inward to keep ``k x k`` keys
(:func:`plugins.ops.neighborhood.neighborhood_attention_2d`).

How it is computed: queries in ``Th x Tw`` tiles; each tile attends to the
``(Th + 2 r_h) x (Tw + 2 r_w)`` rectangle of keys around it (read with ``unfold`` from the map
zero-padded by the radius), with a 0 / -inf mask that keeps the band and drops keys outside the
image. Cost ``O(H W (Th + 2r)(Tw + 2r) d)`` time and logits memory, i.e. ``O(H W r^2 d)``;
never ``(H W)^2``.
"""
import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .utils import IntPair, to_pair

__all__ = ['band_attention_2d']


@functools.lru_cache(maxsize=16)
def _band_mask(size: Tuple[int, int], tile: Tuple[int, int], radius: Tuple[int, int]):
    """Bool mask ``(nT, Th*Tw, Kh*Kw)``: key within the band of the query and inside the map.
    Padded query slots (beyond the map) keep every key, so that no row is empty."""
    h, w = size
    th, tw = tile
    rh, rw = radius
    kh, kw = th + 2 * rh, tw + 2 * rw
    nth, ntw = -(-h // th), -(-w // tw)
    # query slot (i, j) of a tile and key slot (u, v) of its rectangle are (u - rh - i, v - rw - j)
    # apart
    dy = torch.arange(kh)[None, :] - rh - torch.arange(th)[:, None]           # Th Kh
    dx = torch.arange(kw)[None, :] - rw - torch.arange(tw)[:, None]           # Tw Kw
    band = (dy.abs() <= rh)[:, None, :, None] & (dx.abs() <= rw)[None, :, None, :]
    band = band.reshape(th * tw, kh * kw)
    # map positions of the query slots and key slots of every tile
    ty, tx = torch.arange(nth) * th, torch.arange(ntw) * tw
    qy = ty[:, None] + torch.arange(th)[None]                                  # nTh Th
    qx = tx[:, None] + torch.arange(tw)[None]
    ky = ty[:, None] + torch.arange(kh)[None] - rh                             # nTh Kh
    kx = tx[:, None] + torch.arange(kw)[None] - rw
    qvalid = ((qy < h)[:, None, :, None] & (qx < w)[None, :, None, :]).reshape(nth * ntw, -1)
    kvalid = (((ky >= 0) & (ky < h))[:, None, :, None]
              & ((kx >= 0) & (kx < w))[None, :, None, :]).reshape(nth * ntw, -1)
    return band[None] & (kvalid[:, None, :] | ~qvalid[:, :, None])


def band_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, radius: IntPair,
                      scale: Optional[float] = None, tile: IntPair = 8) -> torch.Tensor:
    """Banded 2-D attention.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``; any H, W.
        radius: ``r`` or ``(r_h, r_w)``: keys with ``|dy| <= r_h`` and ``|dx| <= r_w`` are attended
            (a ``(2r+1) x (2r+1)`` window centred on the query, truncated at the borders).
        scale: logit scale, default ``d ** -0.5``.
        tile: query tile per axis (clamped to the map).

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, d), got shape {tuple(q.shape)}')
    rh, rw = to_pair(radius, 'radius')
    if rh < 0 or rw < 0:
        raise ValueError(f'radius must be >= 0, got {(rh, rw)}')
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    th, tw = (min(t, s) for t, s in zip(to_pair(tile, 'tile'), (h, w)))
    kh, kw = th + 2 * rh, tw + 2 * rw
    ph, pw = (-h) % th, (-w) % tw
    nth, ntw = (h + ph) // th, (w + pw) // tw

    def query_tiles(t):  # B heads H W c -> (B heads) nT (Th Tw) c
        t = F.pad(t, (0, 0, 0, pw, 0, ph)).reshape(b * nh, nth, th, ntw, tw, -1)
        return t.permute(0, 1, 3, 2, 4, 5).reshape(b * nh, nth * ntw, th * tw, -1)

    def key_rects(t):  # B heads H W c -> (B heads) nT (Kh Kw) c
        c = t.shape[-1]
        t = t.permute(0, 1, 4, 2, 3).reshape(b * nh, c, h, w)
        t = F.pad(t, (rw, rw + pw, rh, rh + ph))
        t = F.unfold(t, (kh, kw), stride=(th, tw))                           # (B h) c*Kh*Kw nT
        return t.view(b * nh, c, kh * kw, nth * ntw).permute(0, 3, 2, 1)

    mask = _band_mask((h, w), (th, tw), (rh, rw)).to(q.device)
    out = F.scaled_dot_product_attention(query_tiles(q), key_rects(k), key_rects(v),
                                         attn_mask=mask, scale=scale)
    out = out.view(b, nh, nth, ntw, th, tw, dv).permute(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(b, nh, nth * th, ntw * tw, dv)[:, :, :h, :w]
