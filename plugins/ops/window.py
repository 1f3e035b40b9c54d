"""Window attention with padding and (cyclic) shifts: Swin's W-MSA / SW-MSA and HiDiffusion's
MSW-MSA.

Papers: Liu et al., "Swin Transformer" (arXiv 2103.14030, Sec. 3.2: Eq. 4 relative position bias,
"efficient batch computation for shifted configuration": cyclic shift plus a mask); used as the
local branch of DaViT (arXiv 2204.03645) and L2ViT (arXiv 2208.05114); Zhang et al., "HiDiffusion"
(arXiv 2311.17528, Sec. 3.3: MSW-MSA, windows of half the map per side, shifted per call by a
random multiple of a quarter window, cyclically, with no mask).

Tokens are split into non-overlapping ``wh x ww`` windows and attend inside their window:
``O(H W wh ww d)`` time and ``O(H W wh ww)`` memory for the logits, computed window-batched with
``F.scaled_dot_product_attention``.
"""
import functools
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .utils import graph_tracing, pad_to_multiple, relative_position_index, to_pair

IntPair = Union[int, Sequence[int]]

__all__ = ['window_attention_2d', 'window_partition', 'window_merge', 'msw_msa_shift',
           'window_attention_bias', 'window_bias', 'window_bias_terms', 'window_rows',
           'window_qkv_rows', 'permute_rows', 'pad_partition_rows', 'merge_crop_rows']

# logit added to masked pairs: the constant of Swin's official code (and timm's). exp(-100) is
# zero to float32's resolution next to any unmasked pair of the row, and, unlike -inf, it spares
# the softmax of scaled_dot_product_attention its pass for rows that -inf would leave empty
MASKED = -100.0


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """``(B, heads, H, W, d) -> (B, heads, nWh * nWw, wh * ww, d)``; H, W window multiples."""
    b, nh, h, w, d = x.shape
    wh, ww = window
    x = x.view(b, nh, h // wh, wh, w // ww, ww, d).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, nh, (h // wh) * (w // ww), wh * ww, d)


def window_merge(x: torch.Tensor, window: Tuple[int, int], size: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B, heads, nW, N, d) -> (B, heads, H, W, d)``."""
    b, nh, _, _, d = x.shape
    wh, ww = window
    h, w = size
    x = x.view(b, nh, h // wh, w // ww, wh, ww, d).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, nh, h, w, d)


@functools.lru_cache(maxsize=16)
def _window_mask(padded: Tuple[int, int], valid: Tuple[int, int], window: Tuple[int, int],
                 shift: Tuple[int, int], shifted_mask: bool) -> Optional[torch.Tensor]:
    """Additive mask ``(nW, N, N)`` (0 / ``MASKED``) in the rolled frame, or None when nothing is
    masked.

    A key is masked when it lies in padding (and the query does not: padded queries keep their
    keys so that no row is empty), or, with ``shifted_mask``, when it comes from another region of
    the cyclically shifted map than the query (Swin Sec. 3.2, Fig. 4).
    """
    hp, wp = padded
    h, w = valid
    wh, ww = window
    sh, sw = shift
    needs_region = shifted_mask and (sh > 0 or sw > 0)
    if not needs_region and (h, w) == (hp, wp):
        return None
    ys, xs = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    # coordinates in the rolled frame come from the original ones at (y + sh, x + sw) mod size
    oy, ox = (ys + sh) % hp, (xs + sw) % wp
    inside = (oy < h) & (ox < w)
    # Swin's region labels: three bands per axis in the rolled frame
    label = torch.zeros(hp, wp, dtype=torch.long)
    if needs_region:
        band_y = (ys >= hp - wh).long() + (ys >= hp - sh).long() if sh > 0 else torch.zeros_like(ys)
        band_x = (xs >= wp - ww).long() + (xs >= wp - sw).long() if sw > 0 else torch.zeros_like(xs)
        label = band_y * 3 + band_x

    def part(t):  # (hp, wp) -> (nW, N)
        return t.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)

    lab, ins = part(label), part(inside)
    allowed = (lab[:, :, None] == lab[:, None, :]) & (ins[:, None, :] | ~ins[:, :, None])
    return torch.where(allowed, 0.0, MASKED)


def msw_msa_shift(window: IntPair, step: int) -> Tuple[int, int]:
    """HiDiffusion's MSW-MSA shift for ``step`` in {0, 1, 2, 3}: ``step * (w // 4)`` per axis."""
    wh, ww = to_pair(window, 'window')
    if step not in (0, 1, 2, 3):
        raise ValueError(f'step must be one of 0, 1, 2, 3, got {step}')
    return (wh // 4) * step, (ww // 4) * step


def window_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_size: IntPair,
                        shift: IntPair = 0, rpb_table: Optional[torch.Tensor] = None,
                        shifted_mask: bool = True, scale: Optional[float] = None) -> torch.Tensor:
    """Multi-head attention inside (shifted) windows.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``. Any H, W: the map is padded
            (bottom/right) to window multiples and padded keys are masked out. (Swin-style models
            pad the *input* before the projections instead; their mixer does that, so this op then
            sees whole windows.)
        window_size: ``(wh, ww)`` or int.
        shift: cyclic shift ``(sh, sw)``: the map is rolled by ``(-sh, -sw)`` before partitioning
            and back after (Swin: ``window // 2``; HiDiffusion: :func:`msw_msa_shift`).
        rpb_table: Swin's relative position bias table ``((2wh-1) * (2ww-1), heads)``, indexed by
            :func:`plugins.ops.utils.relative_position_index` (Swin Eq. 4).
        shifted_mask: with a shift, mask pairs from different regions of the rolled map (Swin);
            False lets windows wrap around (HiDiffusion's MSW-MSA).
        scale: logit scale, default ``d ** -0.5``.

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, d), got shape {tuple(q.shape)}')
    window = to_pair(window_size, 'window_size')
    sh, sw = to_pair(shift, 'shift')
    b, nh, h, w, _ = q.shape
    if not (0 <= sh < window[0] and 0 <= sw < window[1]):
        raise ValueError(f'shift {(sh, sw)} must lie in [0, window_size) = [0, {window})')
    n = window[0] * window[1]
    table_shape = ((2 * window[0] - 1) * (2 * window[1] - 1), nh)
    if rpb_table is not None and tuple(rpb_table.shape) != table_shape:
        raise ValueError(f'rpb_table must be ((2wh-1)*(2ww-1), heads) = {table_shape}, '
                         f'got {tuple(rpb_table.shape)}')
    hp, wp = h + (-h) % window[0], w + (-w) % window[1]
    nw = (hp // window[0]) * (wp // window[1])
    # padding, cyclic shift and partition in one row gather per tensor:
    # (B*heads*H*W, d) -> (B*heads*nW*N, d); padded slots read token 0 (masked as keys, dropped)
    part, inverse = _partition_index((h, w), window, (sh, sw))
    base = torch.arange(b * nh, device=q.device)[:, None]
    pidx = (base * (h * w) + part.to(q.device)).view(-1)
    qw, kw, vw = (t.reshape(b * nh * h * w, t.shape[-1]).index_select(0, pidx)
                  .view(b, nh * nw, n, t.shape[-1]) for t in (q, k, v))
    bias = window_attention_bias((h, w), window, (sh, sw), rpb_table, nh, shifted_mask,
                                 heads_first=True, dtype=q.dtype, device=q.device)
    out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=bias, scale=scale)
    oidx = (base * (nw * n) + inverse.to(q.device)).view(-1)
    return out.reshape(b * nh * nw * n, -1).index_select(0, oidx).view(b, nh, h, w, -1)


def window_attention_bias(size: Tuple[int, int], window: Tuple[int, int], shift: Tuple[int, int],
                          rpb_table: Optional[torch.Tensor], num_heads: int,
                          shifted_mask: bool = True, heads_first: bool = True, dtype=None,
                          device=None) -> Optional[torch.Tensor]:
    """Additive attention bias ``(1, heads * nW, N, N)`` (or ``(1, nW * heads, N, N)`` with
    ``heads_first=False``) of windows over a ``size`` map padded to window multiples: relative
    position bias plus the shifted-window and padding masks; None when there is nothing to add."""
    bias = window_bias(size, window, shift, rpb_table, num_heads, shifted_mask, dtype, device)
    if bias is None:
        return None
    h, w = size
    nw = (-(-h // window[0])) * (-(-w // window[1]))
    n = window[0] * window[1]
    bias = bias.expand(nw, num_heads, n, n)
    if heads_first:
        bias = bias.transpose(0, 1)
    return bias.reshape(1, nw * num_heads, n, n)


def window_bias(size: Tuple[int, int], window: Tuple[int, int], shift: Tuple[int, int],
                rpb_table: Optional[torch.Tensor], num_heads: int, shifted_mask: bool = True,
                dtype=None, device=None) -> Optional[torch.Tensor]:
    """The same bias in its smallest broadcastable form ``(nW or 1, heads or 1, N, N)``, windows
    first (as ``(B nW, heads, N, N)`` attention takes it for batch 1): the relative position
    bias alone is never repeated per window, nor a mask per head."""
    rpb, mask = window_bias_terms(size, window, shift, rpb_table, num_heads, shifted_mask,
                                  dtype, device)
    if rpb is None or mask is None:
        return mask if rpb is None else rpb
    return rpb + mask


def window_bias_terms(size: Tuple[int, int], window: Tuple[int, int], shift: Tuple[int, int],
                      rpb_table: Optional[torch.Tensor], num_heads: int,
                      shifted_mask: bool = True, dtype=None, device=None):
    """The two terms of :func:`window_bias`, each None when absent: the relative position bias
    ``(1, heads, N, N)`` (Swin Eq. 4) and the shifted-window / padding mask ``(nW, 1, N, N)``."""
    h, w = size
    hp, wp = h + (-h) % window[0], w + (-w) % window[1]
    n = window[0] * window[1]
    mask = _window_mask((hp, wp), (h, w), window, shift, shifted_mask)
    if mask is not None:
        mask = mask.to(device, dtype)[:, None]
    if rpb_table is None:
        return None, mask
    index = _rel_index(window, device)
    rpb = rpb_table[index.view(-1)].view(n, n, num_heads).permute(2, 0, 1)[None].to(dtype)
    return rpb, mask


def window_rows(size: Tuple[int, int], window: IntPair, shift: IntPair = 0):
    """Row gather of (shifted) window partition of a ``size`` map: ``(index, inverse)`` such that
    ``tokens.index_select(0, index)`` lists the padded, rolled map window by window (padded slots
    read token 0) and ``windows.index_select(0, inverse)`` puts every token back."""
    return _partition_index(tuple(size), to_pair(window, 'window'), to_pair(shift, 'shift'))


def window_qkv_rows(size: Tuple[int, int], window: IntPair, shift: IntPair, num_heads: int,
                    batch: int = 1):
    """Row gather from a fused projection's output to window-batched q, k, v: ``(index,
    inverse)`` such that ``qkv.view(-1, d).index_select(0, index)``, with ``qkv`` the
    ``(B, H W, 3, heads, d)`` output of a per-token ``qkv`` linear, is ``(3, B nW, heads, N, d)``
    contiguous, the padded, rolled map window by window (padded slots read token 0): the
    layout the fused SDPA kernel reads fastest (contiguous ``(B nW, heads, N, d)`` q, k, v:
    2.4 % less fwd + bwd time than strided views of the projection at 4 x 2 heads x 3800 tokens,
    CPU). ``inverse`` undoes the gather when it is a permutation (no padding), else None."""
    return _qkv_partition_index(tuple(size), to_pair(window, 'window'), to_pair(shift, 'shift'),
                                num_heads, batch)


@functools.lru_cache(maxsize=16)
def _qkv_partition_index(size, window, shift, num_heads, batch):
    tok, _ = _partition_index(size, window, shift)                 # nW N tokens per image
    n, hw = window[0] * window[1], size[0] * size[1]
    tok = tok.view(-1, n)[None, None, :, None, :] + \
        (torch.arange(batch) * hw)[None, :, None, None, None]       # 1 B nW 1 N
    which = torch.arange(3)[:, None, None, None, None]
    heads = torch.arange(num_heads)[None, None, None, :, None]
    index = ((tok * 3 + which) * num_heads + heads).reshape(-1)     # 3 B nW heads N
    if index.numel() != 3 * batch * hw * num_heads:  # padded slots: not a permutation
        return index, None
    inverse = torch.empty_like(index)
    inverse[index] = torch.arange(index.numel())
    return index, inverse


class _PermuteRows(torch.autograd.Function):
    """``x.index_select(dim, index)`` for a permutation ``index``: its backward gathers with the
    inverse permutation, where autograd's would zero a tensor and scatter-add into it."""

    @staticmethod
    def forward(ctx, x, dim, index, inverse):
        ctx.dim = dim
        ctx.save_for_backward(inverse)
        return x.index_select(dim, index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        inverse, = ctx.saved_tensors
        return grad.index_select(ctx.dim, inverse), None, None, None


def permute_rows(x: torch.Tensor, dim: int, index: torch.Tensor,
                 inverse: Optional[torch.Tensor]) -> torch.Tensor:
    """``x.index_select(dim, index)``; when ``inverse`` is given, ``index`` must be a
    permutation and ``inverse`` its inverse, and the backward is a gather too."""
    if inverse is None or not (x.requires_grad and torch.is_grad_enabled()):
        return x.index_select(dim, index)
    return _PermuteRows.apply(x, dim, index, inverse)


def _copy_regions(windows: torch.Tensor, tokens: torch.Tensor, window: Tuple[int, int],
                  into_windows: bool) -> None:
    """Copy between a ``(B, H, W, C)`` map and the windows ``(B, nWh, wh, nWw, ww, C)`` (a view)
    of its zero-padded form, as at most four rectangles: whole windows, the bottom strip, the
    right strip, the corner; the padding is not touched."""
    h, w = tokens.shape[1:3]
    (wh, ww), (qh, qw) = window, (h // window[0], w // window[1])
    for y0, y1, rows in ((0, qh * wh, (slice(0, qh), slice(None))),
                         (qh * wh, h, (qh, slice(0, h - qh * wh)))):
        for x0, x1, cols in ((0, qw * ww, (slice(0, qw), slice(None))),
                             (qw * ww, w, (qw, slice(0, w - qw * ww)))):
            if y1 == y0 or x1 == x0:
                continue
            part = tokens[:, y0:y1, x0:x1]
            if isinstance(rows[0], slice):  # whole windows along H
                part = part.unflatten(1, (qh, wh))
            if isinstance(cols[0], slice):
                part = part.unflatten(-2, (qw, ww))
            block = windows[:, rows[0], rows[1], cols[0], cols[1]]
            if into_windows:
                block.copy_(part)
            else:
                part.copy_(block)


class _PadPartition(torch.autograd.Function):
    """:func:`pad_partition_rows`, its backward the same copies the other way."""

    @staticmethod
    def forward(ctx, x, window):
        b, c, h, w = x.shape
        grid = (-(-h // window[0]), -(-w // window[1]))
        rows = x.new_zeros(b, grid[0], grid[1], window[0], window[1], c)
        _copy_regions(rows.permute(0, 1, 3, 2, 4, 5), x.permute(0, 2, 3, 1), window, True)
        ctx.window, ctx.grid, ctx.shape = window, grid, x.shape
        return rows.view(b, -1, c)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        b, c, h, w = ctx.shape
        grad_x = grad.new_empty(b, c, h, w)
        windows = grad.reshape(b, *ctx.grid, *ctx.window, c).permute(0, 1, 3, 2, 4, 5)
        _copy_regions(windows, grad_x.permute(0, 2, 3, 1), ctx.window, False)
        return grad_x, None


class _MergeCrop(torch.autograd.Function):
    """:func:`merge_crop_rows`, its backward the same copies the other way (padding 0)."""

    @staticmethod
    def forward(ctx, rows, window, size):
        b, _, c = rows.shape
        grid = (-(-size[0] // window[0]), -(-size[1] // window[1]))
        out = rows.new_empty(b, size[0], size[1], c)
        windows = rows.view(b, *grid, *window, c).permute(0, 1, 3, 2, 4, 5)
        _copy_regions(windows, out, window, False)
        ctx.window, ctx.grid = window, grid
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        b, _, _, c = grad.shape
        rows = grad.new_zeros(b, *ctx.grid, *ctx.window, c)
        _copy_regions(rows.permute(0, 1, 3, 2, 4, 5), grad, ctx.window, True)
        return rows.view(b, -1, c), None, None


def pad_partition_rows(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W) -> (B, nW N, C)``: the windows of the map zero-padded at the bottom / right
    to window multiples, token rows window by window, in one copy from ``x``'s memory. Padding
    then partitioning copies twice, forward and backward: that runs only where it is one copy as
    well (no padding) or where a tracer records the steps."""
    b, c, h, w = x.shape
    padded = h % window[0] or w % window[1]
    if not padded or graph_tracing():
        x = x.permute(0, 2, 3, 1)
        if padded:
            x, _ = pad_to_multiple(x, window, dims=(1, 2))
        hv, wv = x.shape[1:3]
        x = x.reshape(b, hv // window[0], window[0], wv // window[1], window[1], c)
        return x.transpose(2, 3).reshape(b, -1, c)
    return _PadPartition.apply(x, tuple(window))


def merge_crop_rows(rows: torch.Tensor, window: Tuple[int, int],
                    size: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pad_partition_rows` without the padding: ``(B, nW N, C) -> (B, H, W, C)``,
    in one copy. Merging then cropping leaves a padded buffer whose backward zero-fills and copies
    it once more: that runs only where there is no padding or a tracer records the steps."""
    (h, w), (wh, ww) = size, window
    if not (h % wh or w % ww) or graph_tracing():
        b, _, c = rows.shape
        hv, wv = h + (-h) % wh, w + (-w) % ww
        rows = rows.view(b, hv // wh, wv // ww, wh, ww, c).transpose(2, 3)
        return rows.reshape(b, hv, wv, c)[:, :h, :w]
    return _MergeCrop.apply(rows, tuple(window), tuple(size))


@functools.lru_cache(maxsize=16)
def _partition_index(size: Tuple[int, int], window: Tuple[int, int], shift: Tuple[int, int]):
    """Token index of every window slot (padded, rolled by ``-shift``, partitioned), and the slot
    of every token (the inverse)."""
    h, w = size
    wh, ww = window
    hp, wp = h + (-h) % wh, w + (-w) % ww
    ys = (torch.arange(hp) + shift[0]) % hp  # rolled frame row -> original padded row
    xs = (torch.arange(wp) + shift[1]) % wp
    inside = (ys[:, None] < h) & (xs[None, :] < w)
    tok = torch.where(inside, ys[:, None] * w + xs[None, :], 0)  # hp wp
    tok = tok.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1)
    inside = inside.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1)
    inverse = torch.empty(h * w, dtype=torch.long)
    slots = torch.arange(tok.numel())
    inverse[tok[inside]] = slots[inside]
    return tok, inverse


@functools.lru_cache(maxsize=16)
def _rel_index_cpu(window: Tuple[int, int]) -> torch.Tensor:
    return relative_position_index(window)


def _rel_index(window, device):
    return _rel_index_cpu(window).to(device)

