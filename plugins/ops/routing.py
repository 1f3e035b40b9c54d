"""Bi-level routing attention (BiFormer).

Paper: Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention" (arXiv
2303.08810, Sec. 3.2, Eq. 1-5). The map is cut into ``S x S`` regions. Region-level routing:
queries and keys are averaged per region (Eq. 1-2), the region affinity ``A^r = Q^r (K^r)^T``
(Eq. 2) keeps the ``topk`` regions per query region (Eq. 3, ``I^r = topIndex(A^r)``), shared by all
heads and not differentiated (the official code detaches it). Token-level attention: every token
of a region attends to all tokens of its routed regions (Eq. 4-5).

Cost: routing ``O(S^4 d)``; attention ``O(H W topk (H W / S^2) d)``. The routed keys and values are
gathered once, as whole regions (one row copy per routed region: ``topk x`` the key/value memory),
never through an ``S^2 x S^2`` expansion.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .utils import pad_amount

__all__ = ['bilevel_routing_attention', 'route_regions']


def _regions(x: torch.Tensor, n_win: int) -> torch.Tensor:
    """``(B, heads, H, W, d) -> (B, heads, S^2, (H/S) (W/S), d)``, regions in row-major order."""
    b, nh, h, w, d = x.shape
    x = x.view(b, nh, n_win, h // n_win, n_win, w // n_win, d).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, nh, n_win * n_win, (h // n_win) * (w // n_win), d)


def route_regions(q_regions: torch.Tensor, k_regions: torch.Tensor, topk: int,
                  scale: float) -> torch.Tensor:
    """Region-to-region routing (Eq. 1-3): indices ``(B, S^2, topk)`` of the regions with the
    largest ``mean(q) . mean(k)`` over all heads' channels. The affinities are computed in at
    least fp32 (also under autocast), so that low-precision inputs route as their fp32
    counterparts do wherever the choice is not a near tie."""
    qr = q_regions.detach().mean(3, dtype=torch.promote_types(q_regions.dtype, torch.float32))
    kr = k_regions.detach().mean(3, dtype=qr.dtype)  # B heads S^2 d
    with torch.autocast(q_regions.device.type, enabled=False):
        affinity = torch.einsum('bhrd,bhsd->brs', qr * scale, kr)  # B S^2 S^2
    return torch.topk(affinity, k=topk, dim=-1).indices


def bilevel_routing_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_win: int,
                              topk: int, scale: Optional[float] = None,
                              routing_scale: Optional[float] = None,
                              return_index: bool = False):
    """Bi-level routing attention.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``. H, W not multiples of
            ``n_win`` are zero-padded (bottom/right) and the result cropped; padded tokens are zero
            queries / keys / values (as zero-padding the map before a bias-free projection would
            give). BiFormer's mixer pads its input before the projections instead, so this op sees
            multiples.
        n_win: ``S``, the number of regions per side (not their size).
        topk: routed regions per query region (clamped to ``S^2``: ``S^2`` is global attention).
        scale: token-level logit scale, default ``d ** -0.5`` (BiFormer uses ``qk_dim ** -0.5``
            with ``qk_dim`` = all heads' channels; its mixer passes that).
        routing_scale: region-level scale (only the order matters), default ``scale``.
        return_index: also return the routing indices ``(B, S^2, topk)``.

    Returns:
        ``(B, heads, H, W, d_v)`` (and the indices).
    """
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, d), got shape {tuple(q.shape)}')
    if n_win < 1 or topk < 1:
        raise ValueError(f'n_win and topk must be >= 1, got n_win={n_win}, topk={topk}')
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    if scale is None:
        scale = d ** -0.5
    ph, pw = pad_amount(h, n_win), pad_amount(w, n_win)
    if ph or pw:
        q, k, v = (F.pad(t, (0, 0, 0, pw, 0, ph)) for t in (q, k, v))
    hp, wp = h + ph, w + pw
    p2 = n_win * n_win
    topk = min(topk, p2)
    qr, kr, vr = _regions(q, n_win), _regions(k, n_win), _regions(v, n_win)  # B heads S^2 w^2 c
    w2 = qr.shape[3]
    index = route_regions(qr, kr, topk, routing_scale if routing_scale is not None else scale)
    # gather the routed regions as whole rows: (B heads S^2, w^2 c) rows -> (B heads S^2 topk, ...)
    base = (torch.arange(b * nh, device=q.device) * p2).view(b, nh, 1, 1)
    rows = (base + index[:, None]).reshape(-1)  # B heads S^2 topk
    ks = kr.reshape(b * nh * p2, w2 * d).index_select(0, rows).view(b * nh, p2, topk * w2, d)
    vs = vr.reshape(b * nh * p2, w2 * dv).index_select(0, rows).view(b * nh, p2, topk * w2, dv)
    out = F.scaled_dot_product_attention(qr.reshape(b * nh, p2, w2, d), ks, vs, scale=scale)
    hw, ww = hp // n_win, wp // n_win
    out = out.view(b, nh, n_win, n_win, hw, ww, dv).permute(0, 1, 2, 4, 3, 5, 6)
    out = out.reshape(b, nh, hp, wp, dv)[:, :, :h, :w]
    return (out, index) if return_index else out
