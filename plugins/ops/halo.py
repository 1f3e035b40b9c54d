"""Blocked local self-attention with halos (HaloNet).

Paper: Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual Backbones"
(arXiv 2103.12731, Sec. 2.2 "blocked local self-attention" and Fig. 3): the map is cut into
``b x b`` query blocks; each block attends to the ``(b + 2h) x (b + 2h)`` keys of its block grown
by a halo of ``h`` on every side. Keys beyond the image are zeros (the map is zero-padded, as in
the paper and in timm's ``HaloAttn``, the reference implementation), so they take part with logit
= positional term only. Relative position logits are factorised into a height and a width term,
``q . r_h[dy] + q . r_w[dx]`` (Sec. 2.2, after Bello et al.).

Cost: ``O(H W (b + 2h)^2 d)`` time and ``O(H W (b + 2h)^2)`` logits per head.
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
                      scale_pos_embed: bool = False) -> torch.Tensor:
    """Halo attention.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``. Any H, W: the map is
            zero-padded (bottom/right) to block multiples and the result cropped; padding and the
            outer halo are zero keys / values, exactly as zero-padding the map would give.
        block_size: ``b``; halo_size: ``h``; the key window is ``b + 2h`` per side.
        rel_height, rel_width: ``(2 (b + 2h) - 1, d)`` relative embeddings (timm's
            ``pos_embed.height_rel`` / ``width_rel``); both or neither.
        scale: logit scale, default ``d ** -0.5``.
        scale_pos_embed: scale the positional logits too (timm's option), else only ``q k^T``.

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, d), got shape {tuple(q.shape)}')
    if (rel_height is None) != (rel_width is None):
        raise ValueError('pass both rel_height and rel_width, or neither')
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    bs, hs = block_size, halo_size
    win = bs + 2 * hs
    if rel_height is not None and tuple(rel_height.shape) != (2 * win - 1, d):
        raise ValueError(f'rel_height must be (2 * (block + 2 * halo) - 1, d) = {(2 * win - 1, d)},'
                         f' got {tuple(rel_height.shape)}')
    if scale is None:
        scale = d ** -0.5
    ph, pw = pad_amount(h, bs), pad_amount(w, bs)
    hp, wp = h + ph, w + pw
    nbh, nbw = hp // bs, wp // bs
    # query blocks: B heads (nBh bs) (nBw bs) d -> B heads nBh nBw (bs bs) d
    qb = F.pad(q, (0, 0, 0, pw, 0, ph)).view(b, nh, nbh, bs, nbw, bs, d)
    qb = qb.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, nh, nbh, nbw, bs * bs, d)

    def windows(t):  # B heads H W c -> B heads nBh nBw (win win) c, halo and padding zero
        t = F.pad(t, (0, 0, hs, hs + pw, hs, hs + ph))
        t = t.unfold(2, win, bs).unfold(3, win, bs)  # B heads nBh nBw c win win
        return t.permute(0, 1, 2, 3, 5, 6, 4).reshape(b, nh, nbh, nbw, win * win, t.shape[4])

    kw_, vw_ = windows(k), windows(v)
    logits = torch.matmul(qb, kw_.transpose(-1, -2))  # B heads nBh nBw bs^2 win^2
    if rel_height is not None:
        idx = _rel_offsets(bs, win).to(q.device)  # bs, win
        # q . r[j - i + win - 1], per axis: (..., bs, bs, 2win-1) gathered to (..., bs, bs, win)
        q6 = qb.view(b, nh, nbh, nbw, bs, bs, d)
        lh = torch.matmul(q6, rel_height.transpose(0, 1).to(q.dtype))
        lw = torch.matmul(q6, rel_width.transpose(0, 1).to(q.dtype))
        lh = torch.gather(lh, -1, idx[:, None, :].expand(*lh.shape[:-1], win))  # rows: query y
        lw = torch.gather(lw, -1, idx[None, :, :].expand(*lw.shape[:-1], win))  # cols: query x
        pos = (lh[..., :, None] + lw[..., None, :]).view(b, nh, nbh, nbw, bs * bs, win * win)
        if scale_pos_embed:
            logits = (logits + pos) * scale
        else:
            logits = logits * scale + pos
    else:
        logits = logits * scale
    attn = torch.softmax(logits, dim=-1)
    out = torch.matmul(attn, vw_)  # B heads nBh nBw bs^2 dv
    out = out.view(b, nh, nbh, nbw, bs, bs, dv).permute(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(b, nh, hp, wp, dv)[:, :, :h, :w]
