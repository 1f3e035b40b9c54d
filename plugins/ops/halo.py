"""Blocked local self-attention with halos (HaloNet).

Paper: Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual Backbones"
(arXiv 2103.12731, Sec. 2.2 "blocked local self-attention" and Fig. 3): the map is cut into
``b x b`` query blocks; each block attends to the ``(b + 2h) x (b + 2h)`` keys of its block grown
by a halo of ``h`` on every side. Keys beyond the image are zeros (the map is zero-padded, as in
the paper and in timm's ``HaloAttn``, the reference implementation), so they take part with logit
= positional term only. Relative position logits are factorised into a height and a width term,
``q . r_h[dy] + q . r_w[dx]`` (Sec. 2.2, after Bello et al.).

With ``query_stride`` s > 1 (timm's ``HaloAttn(stride=2)``, HaloNet's down-sampling attention),
the queries are the map sub-sampled by s (a strided 1x1 projection), ``b/s x b/s`` of them per
block, attending to the same ``(b + 2h)^2`` window as the full-resolution block; as in timm, the
relative offset of a query is counted at its sub-sampled index within the block.

Cost: ``O(H W (b + 2h)^2 d / s^2)`` time and ``O(H W (b + 2h)^2 / s^2)`` logits per head.
"""
import functools
from typing import Optional

import torch
import torch.nn.functional as F

from .utils import pad_amount

__all__ = ['halo_attention_2d']


@functools.lru_cache(maxsize=16)
def _rel_offsets(block: int, win: int) -> torch.Tensor:
    """``(block, win)``: row of the ``2 win - 1`` table for query ``i`` (in its block) and key
    ``j`` (in its window): ``j - i + win - 1``."""
    return torch.arange(win)[None, :] - torch.arange(block)[:, None] + win - 1


def halo_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                      halo_size: int, rel_height: Optional[torch.Tensor] = None,
                      rel_width: Optional[torch.Tensor] = None, scale: Optional[float] = None,
                      scale_pos_embed: bool = False, query_stride: int = 1) -> torch.Tensor:
    """Halo attention.

    Args:
        q: ``(B, heads, ceil(H / query_stride), ceil(W / query_stride), d)``;
        k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``. Any H, W: the map is
            zero-padded (bottom/right) to block multiples and the result cropped; padding and the
            outer halo are zero keys / values, exactly as zero-padding the map would give.
        block_size: ``b``; halo_size: ``h``; the key window is ``b + 2h`` per side.
        rel_height, rel_width: ``(2 (b + 2h) - 1, d)`` relative embeddings (timm's
            ``pos_embed.height_rel`` / ``width_rel``); both or neither.
        scale: logit scale, default ``d ** -0.5``.
        scale_pos_embed: scale the positional logits too (timm's option), else only ``q k^T``.
        query_stride: s; the queries are the map sub-sampled by s (``block_size % s == 0``).

    Returns:
        ``(B, heads, ceil(H / s), ceil(W / s), d_v)``.
    """
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, d), got shape {tuple(q.shape)}')
    if (rel_height is None) != (rel_width is None):
        raise ValueError('pass both rel_height and rel_width, or neither')
    b, nh, hq, wq, d = q.shape
    h, w, dv = k.shape[2], k.shape[3], v.shape[-1]
    bs, hs, st = block_size, halo_size, query_stride
    if st < 1 or bs % st:
        raise ValueError(f'query_stride ({st}) must be >= 1 and divide block_size ({bs})')
    if (hq, wq) != (-(-h // st), -(-w // st)):
        raise ValueError(f'q must be the {h}x{w} key map sub-sampled by query_stride={st}, i.e. '
                         f'{-(-h // st)}x{-(-w // st)}; got {hq}x{wq}')
    bq = bs // st  # queries per block side
    win = bs + 2 * hs
    if rel_height is not None and tuple(rel_height.shape) != (2 * win - 1, d):
        raise ValueError(f'rel_height must be (2 * (block + 2 * halo) - 1, d) = {(2 * win - 1, d)},'
                         f' got {tuple(rel_height.shape)}')
    if scale is None:
        scale = d ** -0.5
    ph, pw = pad_amount(h, bs), pad_amount(w, bs)
    hp, wp = h + ph, w + pw
    nbh, nbw = hp // bs, wp // bs
    # query blocks: B heads (nBh bq) (nBw bq) d -> B heads nBh nBw (bq bq) d
    qb = F.pad(q, (0, 0, 0, nbw * bq - wq, 0, nbh * bq - hq)).view(b, nh, nbh, bq, nbw, bq, d)
    qb = qb.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, nh, nbh, nbw, bq * bq, d)

    def windows(t):  # B heads H W c -> B heads nBh nBw (win win) c, halo and padding zero
        t = F.pad(t, (0, 0, hs, hs + pw, hs, hs + ph))
        t = t.unfold(2, win, bs).unfold(3, win, bs)  # B heads nBh nBw c win win
        return t.permute(0, 1, 2, 3, 5, 6, 4).reshape(b, nh, nbh, nbw, win * win, t.shape[4])

    kw_, vw_ = windows(k), windows(v)
    logits = torch.matmul(qb, kw_.transpose(-1, -2))  # B heads nBh nBw bq^2 win^2
    if not scale_pos_embed or rel_height is None:
        logits.mul_(scale)  # in place (and below): the logits are never needed twice
    if rel_height is not None:
        idx = _rel_offsets(bq, win).to(q.device)  # bq, win
        # q . r[j - i + win - 1], per axis: (..., bq, bq, 2win-1) gathered to (..., bq, bq, win)
        q6 = qb.view(b, nh, nbh, nbw, bq, bq, d)
        lh = torch.matmul(q6, rel_height.transpose(0, 1).to(q.dtype))
        lw = torch.matmul(q6, rel_width.transpose(0, 1).to(q.dtype))
        lh = torch.gather(lh, -1, idx[:, None, :].expand(*lh.shape[:-1], win))  # rows: query y
        lw = torch.gather(lw, -1, idx[None, :, :].expand(*lw.shape[:-1], win))  # cols: query x
        # the positional logits lh[y, i] + lw[x, j] as two broadcast terms, never materialised
        grid = logits.view(b, nh, nbh, nbw, bq, bq, win, win)
        grid.add_(lh[..., :, None]).add_(lw[..., None, :])
        del grid, lh, lw
        if scale_pos_embed:
            logits.mul_(scale)
    logits = torch.softmax(logits, dim=-1)  # the logits are freed here
    out = torch.matmul(logits, vw_)  # B heads nBh nBw bq^2 dv
    del logits
    out = out.view(b, nh, nbh, nbw, bq, bq, dv).permute(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(b, nh, nbh * bq, nbw * bq, dv)[:, :, :hq, :wq]
