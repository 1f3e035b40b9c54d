"""Neighborhood attention in 2-D: NAT, DiNAT, Generalized / Faster Neighborhood Attention.

Papers: Hassani et al., "Neighborhood Attention Transformer" (arXiv 2204.07143, Sec. 3.1, Eq. 2-3);
Hassani & Shi, "Dilated Neighborhood Attention Transformer" (arXiv 2209.15001, Sec. 3.1);
Hassani et al., "Faster Neighborhood Attention" (arXiv 2403.04690) and "Generalized Neighborhood
Attention" (arXiv 2504.16922, strided windows).

Every query attends to the ``k x k`` keys around it. Near a border the window is shifted inward so
that every query still sees ``k x k`` keys (NAT Sec. 3.1). Dilation ``delta`` splits the grid into
``delta x delta`` interleaved groups and runs the undilated pattern inside each (DiNAT Sec. 3.1).
Stride ``s`` groups queries in runs of ``s`` per axis that share the window of their group's centre
query ("leader"); ``s == k`` is blocked (window) attention (GNA Sec. 3).

How it is computed (pure PyTorch, CPU and GPU, forward and backward): queries are cut into tiles of
``Th x Tw`` (per dilation group); each tile attends to the ``(Th+k-1) x (Tw+k-1)`` key rectangle
around it with an additive ``0 / -inf`` band mask that keeps each query's own ``k x k`` window: a
blocked GEMM in the spirit of Faster NA. Two layouts serve it:

* banded (stride 1, every dilation group at least ``k`` long: NAT / DiNAT): keys are copied once
  into column bands ``Tw + k - 1`` wide, and the rows of a band past each border are filled with
  the rows ``k`` further in (a query at the border sees the same ``k`` keys as NATTEN's window
  shifted inward, so every tile shares one mask; only the relative position bias of the few
  border tiles differs). Every key rectangle is then a strided view of the band buffer (no
  per-tile gather) and a custom backward accumulates the rectangles' key / value gradients in
  place. Memory: ``O(tokens x (Th+k-1)(Tw+k-1) / (Th Tw))`` per head for the probabilities kept
  for the backward, plus ``(Tw+k-1) / Tw`` copies of the keys and values.
* generic (GNA strides, axes shorter than the kernel): tiles and key rectangles are read with one
  ``index_select`` each from index tables built once per shape.

Neither ever materialises ``tokens^2`` logits.
"""
import functools
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .utils import graph_tracing, to_pair

IntPair = Union[int, Sequence[int]]

__all__ = ['neighborhood_attention_2d', 'neighborhood_window_starts', 'natten_can_serve',
           'neighborhood_backend']

# query tile per axis of the generic path: 8 rows x 8 cols (measured, benchmarks/mixers.py)
_DEFAULT_TILE = (8, 8)
_CHUNK_LOGITS = 3 * 2 ** 19  # logits entries per chunk of tiles
# banded path, k = 7, 1 thread, 100x152 and 200x304: with gradients 2 x 8 query tiles (16 queries
# against 8 x 14 keys) are the fastest forward + backward of 1x8 ... 8x8; without, 2 x 4 (8
# queries against 8 x 10 keys: fewer masked logits, smaller GEMMs) is the fastest forward
# (100x152 C=64: 12.7 vs 13.8 ms NAT, 13.6 vs 15.2 DiNAT). Chunks of about 256K logits (1 MB)
_BAND_TILE = (2, 8)
_BAND_TILE_INFERENCE = (2, 4)
_BAND_CHUNK = 2 ** 18


def neighborhood_window_starts(length: int, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Start of each query's window along one axis of one dilation group (NATTEN's definition).

    The leader of query ``i`` is ``min((i // s) * s + s // 2, L - 1)``; the window starts at
    ``clamp(leader - k // 2, 0, L - k)``, so it is shifted inward at the borders. When the axis is
    shorter than the kernel (``L < k``) the window is the whole axis.
    """
    return torch.from_numpy(_window_starts(length, kernel_size, stride))


def _window_starts(length: int, kernel: int, stride: int) -> np.ndarray:
    i = np.arange(length)
    leader = np.minimum((i // stride) * stride + stride // 2, length - 1)
    return np.clip(leader - kernel // 2, 0, max(length - kernel, 0))


# The generic path's tables are built with numpy: tracers (torch.export's fake tensors,
# make_fx's proxies) intercept torch operations, not numpy ones, so the cached tables stay
# concrete whoever asks for them first, and enter a traced graph as constants.

def _axis_tables(length: int, kernel: int, dilation: int, stride: int, tile: int):
    """Tiling of one axis: for every query tile (over all dilation groups) the original positions
    of its queries and of its key span, the 0/1 window mask and the relative offsets.
    """
    groups = []
    span = 0
    for a in range(min(dilation, length)):
        n = len(range(a, length, dilation))
        ke = min(kernel, n)
        ws = _window_starts(n, kernel, stride)
        nt = -(-n // tile)
        for t in range(nt):
            lo, hi = t * tile, min(t * tile + tile, n)
            span = max(span, int(ws[hi - 1]) + ke - int(ws[lo]))
        groups.append((a, n, ke, ws, nt))
    rows_q, rows_k, rows_ok, rows_rel = [], [], [], []
    for a, n, ke, ws, nt in groups:
        span_a = min(span, n)
        for t in range(nt):
            qi = np.arange(t * tile, t * tile + tile)
            qc = np.minimum(qi, n - 1)  # padded queries copy the last query's window
            start = max(0, min(int(ws[t * tile]), n - span))
            ki = start + np.arange(span)
            kvalid = np.arange(span) < span_a
            wq = ws[qc]
            ok = (ki[None, :] >= wq[:, None]) & (ki[None, :] < wq[:, None] + ke) & kvalid[None, :]
            rows_q.append(np.where(qi < n, a + dilation * qi, -1))
            rows_k.append(np.where(kvalid, a + dilation * ki, 0))
            rows_ok.append(ok)
            rows_rel.append(np.clip(ki[None, :] - qc[:, None] + kernel - 1, 0, 2 * kernel - 2))
    return np.stack(rows_q), np.stack(rows_k), np.stack(rows_ok), np.stack(rows_rel)


def _row_patterns(ok: np.ndarray, rel: np.ndarray):
    """Ids of the distinct (mask, offsets) patterns of one axis's tiles, and one of each."""
    key = np.concatenate([ok.reshape(len(ok), -1).astype(np.int64), rel.reshape(len(rel), -1)],
                         axis=1)
    _, first, ids = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return ids.reshape(-1), ok[first], rel[first]


@torch.compiler.disable  # built eagerly (torch.compile would trace the numpy into its graph)
@functools.lru_cache(maxsize=8)
def _tables(height: int, width: int, kernel: Tuple[int, int], dilation: Tuple[int, int],
            stride: Tuple[int, int], tile: Tuple[int, int]):
    """Index tables of a 2-D call (cached per shape): flat query / key indices per tile, the
    inverse map from tokens to tile slots, and the window masks / relative offsets.

    Interior tiles share one mask and one offset table; only tiles at borders (and of partial
    size) differ. Tiles are therefore ordered by their (row pattern, column pattern) and ``runs``
    lists the contiguous ranges that share one: a bias is built per pattern and broadcast over
    its run, never gathered to the size of all logits."""
    qh, kh, okh, relh = _axis_tables(height, kernel[0], dilation[0], stride[0], tile[0])
    qw, kw, okw, relw = _axis_tables(width, kernel[1], dilation[1], stride[1], tile[1])
    rh, th = qh.shape
    rw, tw = qw.shape
    ids_h, okh, relh = _row_patterns(okh, relh)
    ids_w, okw, relw = _row_patterns(okw, relw)
    pattern = (ids_h[:, None] * len(okw) + ids_w[None, :]).reshape(-1)   # per tile, (Rh*Rw)
    order = np.argsort(pattern, kind='stable')
    # (Rh, Rw, Th, Tw) flat query index; -1 marks a padded query slot
    qvalid = (qh[:, None, :, None] >= 0) & (qw[None, :, None, :] >= 0)
    qflat = np.where(qvalid, qh[:, None, :, None] * width + qw[None, :, None, :], 0)
    qflat = qflat.reshape(rh * rw, -1)[order].reshape(-1)
    valid = qvalid.reshape(rh * rw, -1)[order].reshape(-1)
    kflat = (kh[:, None, :, None] * width + kw[None, :, None, :]).reshape(rh * rw, -1)
    kflat = kflat[order].reshape(-1)
    inverse = np.empty(height * width, dtype=np.int64)
    inverse[qflat[valid]] = np.arange(qflat.size)[valid]
    # per pattern: additive 0 / -inf mask (P, Th*Tw, Kh*Kw), rows and columns separable, and the
    # flat index into a (2k-1)^2 relative position bias table, same layout
    mask = np.where(okh[:, None, :, None, :, None] & okw[None, :, None, :, None, :], 0.0,
                    -np.inf).astype(np.float32).reshape(len(okh) * len(okw), th * tw, -1)
    rel = (relh[:, None, :, None, :, None] * (2 * kernel[1] - 1)
           + relw[None, :, None, :, None, :]).reshape(len(okh) * len(okw), th * tw, -1)
    sorted_pattern = pattern[order]
    bounds = [0] + (np.nonzero(sorted_pattern[1:] != sorted_pattern[:-1])[0] + 1).tolist()
    runs = [(s, e, int(sorted_pattern[s])) for s, e in zip(bounds, bounds[1:] + [rh * rw])]
    return dict(qflat=qflat, kflat=kflat, inverse=inverse, mask=mask, rel=rel, runs=runs,
                grid=(rh, rw), tile=(th, tw), span=(kh.shape[1], kw.shape[1]))


# ---------------------------------------------------------------------------- banded path

def _band_axis(length: int, kernel: int, dilation: int, tile: int, phantom: bool):
    """Tiles of one axis in the banded layout, over all dilation groups.

    For tile ``t`` of a group of ``n`` positions: its queries (group rows ``t*T .. t*T+T-1``) and
    the ``T + k - 1`` key rows ``t*T - k//2 ..`` of its rectangle. A key row ``y`` outside the
    group is replaced by ``y + k`` (above) or ``y - k`` (below): then the centred window of every
    query holds exactly the keys of NATTEN's window shifted inward at the border. ``phantom``
    (rows) appends ``ceil((k-1) / T)`` query-less tiles per group, so that consecutive tiles'
    rectangles are ``T`` rows apart throughout and can be strided views of one buffer.

    Returns image positions (-1: none) of the queries ``(tiles, T)`` and keys ``(tiles, T+k-1)``,
    and the clamped relative offsets ``key - query + k - 1`` ``(tiles, T, T+k-1)``.
    """
    left, right = kernel // 2, kernel - 1 - kernel // 2
    q_src, k_src, rel = [], [], []
    for a in range(dilation):
        n = len(range(a, length, dilation))
        tiles = -(-n // tile) + (-(-(kernel - 1) // tile) if phantom else 0)
        for t in range(tiles):
            yq = t * tile + torch.arange(tile)
            yk = t * tile - left + torch.arange(tile + kernel - 1)
            wrapped = torch.where(yk < 0, yk + kernel, torch.where(yk >= n, yk - kernel, yk))
            k_ok = (yk >= -left) & (yk < n + right)
            q_src.append(torch.where(yq < n, a + dilation * yq, -1))
            k_src.append(torch.where(k_ok, a + dilation * wrapped, -1))
            rel.append(torch.clamp(wrapped[None, :] - yq[:, None] + kernel - 1, 0, 2 * kernel - 2))
    return torch.stack(q_src), torch.stack(k_src), torch.stack(rel)


def _band_mask(tile: int, kernel: int) -> torch.Tensor:
    """(T, T+k-1) bool: key j of a rectangle lies in the window of query i of its tile."""
    off = torch.arange(tile + kernel - 1)[None, :] - torch.arange(tile)[:, None]
    return (off >= 0) & (off < kernel)


def _banded_applies(height, width, kernel, dilation, stride) -> bool:
    return stride == (1, 1) and height // dilation[0] >= kernel[0] and \
        width // dilation[1] >= kernel[1]


@functools.lru_cache(maxsize=16)
def _band_plan(height: int, width: int, kernel: Tuple[int, int], dilation: Tuple[int, int],
               tile: Tuple[int, int]) -> dict:
    """Index tables of the banded layout of a ``height x width`` map (cached per shape).

    Per batch-head the query buffer is ``(bands, RS, Tw)`` and the key buffer
    ``(bands, RS, Tw+kw-1)`` (``RS`` row slots: the row tiles of every row dilation group, phantom
    tiles included), followed by a tail of ``kh-1`` rows and one zero slot; tile ``g`` (over
    batch-head, band, row tile) owns queries ``g*Th*Tw ..`` and the key rectangle starting
    ``g*Th`` rows of ``Tw+kw-1`` slots into the key buffer. ``cls`` gives each tile's bias class
    (its row and column offset tables), ``rel`` the ``(2k-1)^2`` rpb index of each class.
    """
    (kh, kw), (th, tw) = kernel, tile
    q_rows, k_rows, rel_h = _band_axis(height, kh, dilation[0], th, phantom=True)
    q_cols, k_cols, rel_w = _band_axis(width, kw, dilation[1], tw, phantom=False)
    row_q = q_rows.reshape(-1)                 # RS: the image row of each query slot
    row_k = k_rows[:, :th].reshape(-1)         # RS: the image row of each key slot
    q_ok = (row_q[None, :, None] >= 0) & (q_cols[:, None, :] >= 0)
    qslots = torch.where(q_ok, row_q[None, :, None] * width + q_cols[:, None, :], 0).reshape(-1)
    k_ok = (row_k[None, :, None] >= 0) & (k_cols[:, None, :] >= 0)
    kslots = torch.where(k_ok, row_k[None, :, None] * width + k_cols[:, None, :], -1).reshape(-1)
    q_ok = q_ok.reshape(-1)
    slot_of_token = torch.empty(height * width, dtype=torch.long)
    slot_of_token[qslots[q_ok]] = torch.arange(qslots.numel())[q_ok]
    row_cls, rel_h = _unique_rows(rel_h)
    col_cls, rel_w = _unique_rows(rel_w)
    tq, tk = th * tw, (th + kh - 1) * (tw + kw - 1)
    keep = _band_mask(th, kh)[:, None, :, None] & _band_mask(tw, kw)[None, :, None, :]
    mask = torch.where(keep, 0.0, float('-inf')).reshape(tq, tk)
    rel = (rel_h[:, None, :, None, :, None] * (2 * kw - 1)
           + rel_w[None, :, None, :, None, :]).reshape(len(rel_h) * len(rel_w), tq, tk)
    cls = (row_cls[None, :] * len(rel_w) + col_cls[:, None]).reshape(-1)  # (band, row tile)
    # key slots outside every real query's window read token 0 (their gradient is zero)
    return dict(qslots=qslots, kslots=kslots.clamp(min=0), key_tokens=kslots,
                slot_of_token=slot_of_token, real=q_ok.view(-1, tq).any(1),
                mask=mask, rel=rel, cls=cls, tile=(th, tw),
                tq=tq, tk=tk, kwidth=tw + kw - 1, tail=(kh - 1) * (tw + kw - 1) + 1,
                period=-(-(th + kh - 1) // th), tokens=height * width,
                rpb_shape=(2 * kh - 1, 2 * kw - 1), on_device={})


def _unique_rows(tables: torch.Tensor):
    """Class id of each table and the distinct tables."""
    uniq, ids = torch.unique(tables.flatten(1), dim=0, return_inverse=True)
    return ids, uniq.view(-1, *tables.shape[1:])


def _plan_on(plan: dict, device: torch.device, batch: int, heads: int) -> dict:
    """The plan's tables on ``device`` for ``batch x heads``, built once: rows of the output
    ``(B, H, W, heads)`` (and of a last, scratch row) of every query slot, each tile's bias
    class, the fold of the key gradient buffer, the 0/1 validity of the query slots."""
    key = (device, batch, heads)
    got = plan['on_device'].get(key)
    if got is None:
        bh, tokens = batch * heads, plan['tokens']
        sq, sk, nc = plan['qslots'].numel(), plan['kslots'].numel(), len(plan['rel'])
        b_of, h_of = torch.arange(bh) // heads, torch.arange(bh) % heads
        valid = torch.zeros(sq, dtype=torch.bool)
        valid[plan['slot_of_token']] = True
        out_rows = (b_of[:, None] * tokens + plan['qslots'][None, :]) * heads + h_of[:, None]
        out_rows = torch.where(valid[None, :], out_rows, bh * tokens)  # padded slots: scratch
        cls = plan['cls'][None, :] + nc * h_of[:, None]
        # slot row of every output row (b, token, head): the final gather of the output / dq
        slot_of_out = (torch.arange(bh).view(batch, 1, heads) * sq
                       + plan['slot_of_token'][None, :, None])
        got = dict(mask=plan['mask'].to(device),
                   rel=(plan['rel'][None] + (torch.arange(heads) * plan['rpb_shape'][0]
                        * plan['rpb_shape'][1]).view(-1, 1, 1, 1)).reshape(-1).to(device),
                   out_rows=out_rows.reshape(-1).to(device), cls=cls.reshape(-1).to(device),
                   slot_of_out=slot_of_out.reshape(-1).to(device),
                   ranges=_real_ranges(plan, bh),
                   valid=valid.repeat(bh).to(device),
                   fold=_fold_index(plan['key_tokens'], tokens, batch, heads,
                                    zero_row=bh * sk + plan['tail'] - 1, device=device))
        plan['on_device'][key] = got
    return got


def _fold_index(kslots, tokens, batch, heads, zero_row, device):
    """Rows of the flat key gradient buffer (batch-head-major, then a tail whose last row is
    zero) that sum into each output row ``(b, token, head)``: per multiplicity rank ``j`` (the
    j-th slot holding a token), one full gather where most tokens have a j-th slot (the others
    read the zero row), else (output row, slot row) lists for an ``index_add_``. Slots of no
    token (-1 in ``kslots``) are left out."""
    order = torch.argsort(kslots, stable=True)
    order = order[kslots[order] >= 0]
    tok = kslots[order]
    rank = torch.arange(len(tok)) - torch.searchsorted(tok, torch.arange(tokens))[tok]
    b = torch.arange(batch)[:, None, None]
    h = torch.arange(heads)[None, None, :]
    base = (b * heads + h) * len(kslots)  # (B, 1, heads): first slot row of each batch-head
    full, extra = [], []
    for j in range(int(rank.max()) + 1):
        t_j, s_j = tok[rank == j], order[rank == j]
        if j == 0 or 2 * len(t_j) >= tokens:
            idx = torch.full((tokens,), -1, dtype=torch.long)
            idx[t_j] = s_j
            rows = torch.where(idx[None, :, None] >= 0, idx[None, :, None] + base, zero_row)
            full.append(rows.reshape(-1))
        else:
            out = (b * tokens + t_j[None, :, None]) * heads + h
            extra.append((out.reshape(-1).to(device),
                          (s_j[None, :, None] + base).reshape(-1).to(device)))
    return [f.to(device) for f in full], extra


def _token_rows(t: torch.Tensor, device_cache: dict):
    """``(B, heads, H, W, c)`` -> a 2-D ``(rows, c)`` view of its storage and the row of every
    (batch-head, token) ``(B*heads, H*W)``: gathers of tokens then read whole rows of ``c``
    values (one ``index_select`` on dim 0), whatever the layout (the heads of a packed ``qkv``
    projection included). A layout without such rows is made contiguous first."""
    b, nh, h, w, c = t.shape
    strides = t.stride()
    if strides[-1] != 1 or any(s % c for s in strides[:-1]):
        t = t.contiguous()
        strides = t.stride()
    key = ('rows', b, nh, h, w, c, strides)
    rows_of = device_cache.get(key)
    if rows_of is None:
        sb, sh, sy, sx = (s // c for s in strides[:-1])
        bh = (torch.arange(b)[:, None] * sb + torch.arange(nh)[None, :] * sh).reshape(-1, 1)
        tok = torch.arange(h)[:, None] * sy + torch.arange(w)[None, :] * sx
        rows_of = (bh + tok.reshape(1, -1)).to(t.device)
        device_cache[key] = rows_of
    n_rows = 1 + sum((n - 1) * s for n, s in zip(t.shape[:-1], strides[:-1])) // c
    return t.as_strided((n_rows, c), (c, 1)), rows_of


def _slot_rows(rows_of: torch.Tensor, slots: torch.Tensor, extra: int = 0) -> torch.Tensor:
    """Row of every slot of every batch-head (batch-head-major), then ``extra`` rows of row 0."""
    rows = rows_of[:, slots].reshape(-1)
    return torch.cat([rows, rows.new_zeros(extra)]) if extra else rows


def _indices(plan, dev, name, t, slots_name, extra=0):
    """Cached slot rows of ``t`` for ``plan[slots_name]`` (see :func:`_token_rows`)."""
    rows2d, rows_of = _token_rows(t, dev)
    key = (name, rows_of.data_ptr(), extra)
    got = dev.get(key)
    if got is None:
        got = _slot_rows(rows_of, dev.setdefault(slots_name, plan[slots_name].to(t.device)),
                         extra)
        dev[key] = got
    return rows2d, got


def _rects(buf: torch.Tensor, plan: dict, tiles: int, c: int) -> torch.Tensor:
    """``(tiles, (Th+kh-1)(Tw+kw-1), c)`` view of a key buffer: each tile's key rectangle."""
    step = plan['tile'][0] * plan['kwidth'] * c
    return buf.as_strided((tiles, plan['tk'], c), (step, c, 1))


def _real_ranges(plan: dict, heads_total: int):
    """``(start, end)`` tile ranges of at most ``_BAND_CHUNK`` logits each (cache-sized) that
    cover every tile holding a query, and the longest range's length. Phantom tiles (their
    rectangles only complete the band buffer) are left out, except where a gap of them joins
    two short runs into one range (fewer, larger batched GEMMs: DiNAT's row groups)."""
    chunk = max(1, _BAND_CHUNK // (plan['tq'] * plan['tk']))
    real = plan['real'].repeat(heads_total)
    edges = torch.diff(torch.cat([real.new_zeros(1), real, real.new_zeros(1)]).to(torch.int8))
    starts, ends = (edges == 1).nonzero()[:, 0].tolist(), (edges == -1).nonzero()[:, 0].tolist()
    runs = []
    for s, e in zip(starts, ends):
        if runs and e - runs[-1][0] <= chunk:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    ranges = []
    for s, e in runs:
        pieces = -(-(e - s) // chunk)
        cuts = [s + (e - s) * i // pieces for i in range(pieces + 1)]
        ranges += list(zip(cuts[:-1], cuts[1:]))
    return ranges, max(e - s for s, e in ranges)


class _BandedNeighborhoodAttention(torch.autograd.Function):
    """Banded NA, chunk by chunk of tiles (:func:`_real_ranges`): each chunk's queries and key /
    value rectangles are gathered into cache-sized buffers and consumed at once; outputs (and
    query gradients) are written in query slot order and put in token order by one row gather
    at the end. The backward recomputes nothing but the gathers (the probabilities are kept) and
    accumulates the rectangles' key / value gradients in band buffers, folded back to tokens at
    the end. Once differentiable."""

    @staticmethod
    def forward(ctx, q, k, v, rpb, plan, scale, keep):
        b, nh, h, w, d = q.shape
        dv = v.shape[-1]
        k, v = k.to(q.dtype), v.to(q.dtype)
        dev = _plan_on(plan, q.device, b, nh)
        tq, tk, kstep = plan['tq'], plan['tk'], plan['tile'][0] * plan['kwidth']
        tiles = b * nh * plan['qslots'].numel() // tq
        q2, q_rows = _indices(plan, dev, 'q', q, 'qslots')
        k2, k_rows = _indices(plan, dev, 'k', k, 'kslots', plan['tail'])
        v2, v_rows = _indices(plan, dev, 'v', v, 'kslots', plan['tail'])
        bias, cls = _bias_table(rpb, plan, dev, nh, q.dtype)
        ranges, chunk = dev['ranges']
        probs = q.new_empty(tiles if keep else chunk, tq, tk)
        logits = q.new_empty(chunk, tq, tk)
        q_c, k_c, v_c = (q.new_empty(chunk * tq, d), q.new_empty(chunk * kstep + plan['tail'], d),
                         q.new_empty(chunk * kstep + plan['tail'], dv))
        out_slots = q.new_empty(tiles * tq, dv)  # query slot order; phantom tiles never written
        for s, e in ranges:
            n = e - s
            k_span = slice(s * kstep, e * kstep + plan['tail'])
            torch.index_select(q2, 0, q_rows[s * tq:e * tq], out=q_c[:n * tq])
            torch.index_select(k2, 0, k_rows[k_span], out=k_c[:n * kstep + plan['tail']])
            torch.index_select(v2, 0, v_rows[k_span], out=v_c[:n * kstep + plan['tail']])
            lg = logits[:n]
            if cls is None:
                lg.copy_(bias.expand_as(lg))
            else:  # the bias of each tile's class: (2k-1)^2 rpb looked up + the band mask
                torch.index_select(bias, 0, cls[s:e], out=lg)
            lg.baddbmm_(q_c[:n * tq].view(n, tq, d), _rects(k_c, plan, n, d).transpose(1, 2),
                        alpha=scale)
            p = probs[s:e] if keep else probs[:n]
            torch.softmax(lg, -1, out=p)
            torch.bmm(p, _rects(v_c, plan, n, dv), out=out_slots[s * tq:e * tq].view(n, tq, dv))
        # one row gather to (B, H, W, heads) order (a row memcpy; index_copy_ per chunk: 4x slower)
        out = out_slots.index_select(0, dev['slot_of_out']).view(b, h, w, nh, dv)
        del out_slots
        if keep:
            ctx.save_for_backward(q, k, v, probs, out)
        ctx.plan, ctx.scale, ctx.has_rpb = plan, scale, rpb is not None
        return out.permute(0, 3, 1, 2, 4)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        q, k, v, probs, out = ctx.saved_tensors
        plan, scale = ctx.plan, ctx.scale
        b, nh, h, w, d = q.shape
        dv = v.shape[-1]
        dev = _plan_on(plan, grad.device, b, nh)
        tq, tk, kstep, tail = plan['tq'], plan['tk'], plan['tile'][0] * plan['kwidth'], \
            plan['tail']
        tiles = b * nh * plan['qslots'].numel() // tq
        grad = grad.to(out.dtype)
        q2, q_rows = _indices(plan, dev, 'q', q, 'qslots')
        k2, k_rows = _indices(plan, dev, 'k', k, 'kslots', tail)
        v2, v_rows = _indices(plan, dev, 'v', v, 'kslots', tail)
        g2, g_rows = _indices(plan, dev, 'g', grad, 'qslots')
        # softmax backward needs rowsum(dO * O) per query: per output row, 0 in the scratch row
        delta = torch.cat([(grad.permute(0, 2, 3, 1, 4) * out).sum(-1).reshape(-1),
                           grad.new_zeros(1)])
        valid = dev['valid'].to(grad.dtype)
        ranges, chunk = dev['ranges']
        dq_slots = q.new_empty(tiles * tq, d)
        dk = q.new_zeros(tiles * kstep + tail, d)   # band buffers, batch-head-major
        dvb = q.new_zeros(tiles * kstep + tail, dv)
        dbias = probs.new_zeros(nh * len(plan['rel']), tq, tk) if ctx.has_rpb else None
        period = plan['period']
        ds_buf = probs.new_empty(chunk, tq, tk)
        dk_c, dv_c = q.new_empty(chunk, tk, d), q.new_empty(chunk, tk, dv)
        q_c, g_c = q.new_empty(chunk * tq, d), q.new_empty(chunk * tq, dv)
        k_c, v_c = q.new_empty(chunk * kstep + tail, d), q.new_empty(chunk * kstep + tail, dv)
        for s, e in ranges:
            n, qs, k_span = e - s, slice(s * tq, e * tq), slice(s * kstep, e * kstep + tail)
            qn, gn = q_c[:n * tq].view(n, tq, d), g_c[:n * tq].view(n, tq, dv)
            torch.index_select(q2, 0, q_rows[qs], out=q_c[:n * tq])
            torch.index_select(g2, 0, g_rows[qs], out=g_c[:n * tq])
            g_c[:n * tq].mul_(valid[qs, None])  # padded query slots: no gradient
            torch.index_select(k2, 0, k_rows[k_span], out=k_c[:n * kstep + tail])
            torch.index_select(v2, 0, v_rows[k_span], out=v_c[:n * kstep + tail])
            kn, vn = _rects(k_c, plan, n, d), _rects(v_c, plan, n, dv)
            ds = ds_buf[:n]
            torch.bmm(gn, vn.transpose(1, 2), out=ds)
            ds.sub_(delta[dev['out_rows'][qs]].view(n, tq, 1)).mul_(probs[s:e])  # d logits
            if dbias is not None:
                dbias.index_add_(0, dev['cls'][s:e], ds)
            ds.mul_(scale)
            torch.bmm(ds, kn, out=dq_slots[qs].view(n, tq, d))
            torch.bmm(ds.transpose(1, 2), qn, out=dk_c[:n])
            torch.bmm(probs[s:e].transpose(1, 2), gn, out=dv_c[:n])
            dkt, dvt = _rects(dk[s * kstep:], plan, n, d), _rects(dvb[s * kstep:], plan, n, dv)
            for r in range(min(period, n)):  # rectangles of tiles `period` apart are disjoint
                dkt[r::period].add_(dk_c[r:n:period])
                dvt[r::period].add_(dv_c[r:n:period])
        grads = [dq_slots.index_select(0, dev['slot_of_out']).view(b, h, w, nh, d)]
        del dq_slots
        for buf, c in ((dk, d), (dvb, dv)):
            buf[-1].zero_()  # the tail's last row: the zero every missing fold slot reads
            grads.append(_fold(buf, dev, c).view(b, h, w, nh, c))
        grpb = None
        if dbias is not None:
            grpb = dbias.new_zeros(nh * plan['rpb_shape'][0] * plan['rpb_shape'][1])
            grpb.index_add_(0, dev['rel'], dbias.view(-1))
            grpb = grpb.view(nh, *plan['rpb_shape'])
        gq, gk, gv = (g.permute(0, 3, 1, 2, 4) for g in grads)
        return gq, gk, gv, grpb, None, None, None


def _bias_table(rpb, plan, dev, heads, dtype):
    """Logit bias per tile class ``(heads * classes, Th Tw, rect)`` and each tile's class, or the
    band mask ``(1, Th Tw, rect)`` (and None) without a position bias."""
    mask = dev['mask'].to(dtype)
    if rpb is None:
        return mask[None], None
    table = rpb.to(dtype).reshape(-1).index_select(0, dev['rel'])
    return table.view(-1, *mask.shape).add_(mask).view(-1, plan['tq'], plan['tk']), dev['cls']


def _fold(buf: torch.Tensor, dev: dict, c: int) -> torch.Tensor:
    """Gradient band buffer -> ``(B H W heads, c)``: every token the sum of its slots."""
    full, extra = dev['fold']
    out = buf.index_select(0, full[0])
    for idx in full[1:]:
        out.add_(buf.index_select(0, idx))
    for out_rows, slot_rows in extra:
        out.index_add_(0, out_rows, buf.index_select(0, slot_rows))
    return out

def _check(q, k, v, kernel, dilation, stride, rpb):
    if q.dim() != 5:
        raise ValueError(f'q must be (B, heads, H, W, head_dim), got shape {tuple(q.shape)}')
    if k.shape != q.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f'k must match q {tuple(q.shape)} and v must match it except in the last '
                         f'dim; got k {tuple(k.shape)}, v {tuple(v.shape)}')
    for name, val in (('kernel_size', kernel), ('dilation', dilation), ('stride', stride)):
        if min(val) < 1:
            raise ValueError(f'{name} must be >= 1, got {val}')
    if stride[0] > kernel[0] or stride[1] > kernel[1]:
        raise ValueError(f'stride {stride} must not exceed kernel_size {kernel}')
    if rpb is not None:
        want = (q.shape[1], 2 * kernel[0] - 1, 2 * kernel[1] - 1)
        if tuple(rpb.shape) != want:
            raise ValueError(f'rpb must have shape (heads, 2k-1, 2k-1) = {want}, '
                             f'got {tuple(rpb.shape)}')


def natten_can_serve(q: torch.Tensor, kernel: Tuple[int, int], dilation: Tuple[int, int],
                     stride: Tuple[int, int], rpb: Optional[torch.Tensor]) -> bool:
    """Whether ``natten.na2d`` (NATTEN's fused kernels) serves this call with the same result: on
    CUDA, natten importable, no relative position bias, a head_dim it supports,
    ``kernel * dilation <= H, W``, and no graph being traced. Elsewhere the toolkit's paths run."""
    if rpb is not None or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    d = q.shape[-1]
    if d < 8 or d > 512 or d & (d - 1):
        return False
    h, w = q.shape[2:4]
    if kernel[0] * dilation[0] > h or kernel[1] * dilation[1] > w:
        return False
    if q.device.type != 'cuda':
        return False  # its CPU path is eager flex attention (no backward), far slower than ours
    if graph_tracing():
        return False  # exported graphs stay plain tensor ops (no natten custom op in them)
    return _natten() is not None


def neighborhood_backend(q: torch.Tensor, kernel_size: IntPair, dilation: IntPair = 1,
                         stride: IntPair = 1, rpb: Optional[torch.Tensor] = None,
                         use_natten: Optional[bool] = None) -> str:
    """Which path :func:`neighborhood_attention_2d` takes for this call:

    * ``'natten'``: NATTEN's fused kernels (``natten.na2d``): ``use_natten=True``, or (None) on
      CUDA when natten imports and can serve the call (:func:`natten_can_serve`);
    * ``'banded'``: the toolkit's banded path (stride 1, every dilation group at least ``k``
      long), eager runs on any device;
    * ``'generic'``: the toolkit's generic tiled path (any stride, short axes, traced graphs).
    """
    kernel = to_pair(kernel_size, 'kernel_size')
    dil = to_pair(dilation, 'dilation')
    strd = to_pair(stride, 'stride')
    if use_natten or (use_natten is None and natten_can_serve(q, kernel, dil, strd, rpb)):
        return 'natten'
    h, w = q.shape[2:4]
    if _banded_applies(h, w, kernel, dil, strd) and not graph_tracing():
        return 'banded'
    return 'generic'


@functools.lru_cache(maxsize=1)
def _natten():
    try:
        import natten  # noqa: F401
    except Exception:  # noqa: BLE001  (optional accelerator: any import failure means absent)
        return None
    return natten if hasattr(natten, 'na2d') else None


def neighborhood_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              kernel_size: IntPair, dilation: IntPair = 1, stride: IntPair = 1,
                              rpb: Optional[torch.Tensor] = None, scale: Optional[float] = None,
                              tile: Optional[IntPair] = None,
                              use_natten: Optional[bool] = None) -> torch.Tensor:
    """2-D neighborhood attention (NAT Eq. 2-3; DiNAT dilation; GNA stride).

    Args:
        q, k: ``(B, heads, H, W, d)`` (heads-first, as the pre-0.20 NATTEN ops and the NAT/DiNAT
            code). v: ``(B, heads, H, W, d_v)``.
        kernel_size: window size ``k`` (int or pair); odd in NAT/DiNAT, even allowed.
        dilation: ``delta`` (int or pair); the grid splits into ``delta x delta`` groups.
        stride: ``s <= k``; 1 is sliding (NAT), ``s == k`` blocked, in between strided (GNA).
        rpb: optional relative position bias ``(heads, 2k-1, 2k-1)``, the ``rpb`` parameter of the
            official NAT/DiNAT checkpoints: query ``(i, j)`` and key ``(i', j')`` (coordinates in
            their dilation group) get ``rpb[h, i'-i+k-1, j'-j+k-1]`` added to their logit.
        scale: logit scale, default ``d ** -0.5``.
        tile: query tile per axis of the pure-PyTorch paths (default banded: 2 x 8 where a
            gradient is needed, 2 x 4 otherwise; generic: 8 x 8).
        use_natten: None = use ``natten.na2d`` (NATTEN's fused kernels) on CUDA when it can serve
            the call with the same result (see :func:`natten_can_serve`), the toolkit's paths
            otherwise (:func:`neighborhood_backend` tells which); False = never, True = require
            it.

    An axis of a dilation group shorter than the kernel attends to the whole of that axis
    (NATTEN refuses ``k * delta > H``; callers such as the mixers clamp dilation instead).
    Stride 1 with every dilation group at least ``k`` long (NAT, DiNAT) takes the banded path (run
    eagerly inside ``torch.compile``), any other call and any call a graph is traced from (jit,
    ``torch.export``, ONNX) the generic one (module docstring); both give the same numbers.

    Complexity: ``O(B heads H W k^2 d)`` time at a constant factor of
    ``(Th+k-1)(Tw+k-1) / k^2`` wasted (masked) logits; memory ``O(B heads H W k^2)``.

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    kernel = to_pair(kernel_size, 'kernel_size')
    dil = to_pair(dilation, 'dilation')
    strd = to_pair(stride, 'stride')
    _check(q, k, v, kernel, dil, strd, rpb)
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    if scale is None:
        scale = d ** -0.5
    backend = neighborhood_backend(q, kernel, dil, strd, rpb, use_natten)
    if backend == 'natten':
        natten = _natten()
        if natten is None:
            raise RuntimeError('use_natten=True but natten is not importable')
        out = natten.na2d(q.transpose(1, 3).transpose(1, 2), k.transpose(1, 3).transpose(1, 2),
                          v.transpose(1, 3).transpose(1, 2), kernel_size=kernel, stride=strd,
                          dilation=dil, scale=scale)
        return out.permute(0, 3, 1, 2, 4)  # B H W heads d -> B heads H W d
    if backend == 'banded':
        keep = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (q, k, v, rpb))
        default = _BAND_TILE if keep else _BAND_TILE_INFERENCE
        plan = _band_plan(h, w, kernel, dil, to_pair(tile, 'tile') if tile else default)
        return _banded(q, k, v, rpb, plan, scale, keep)
    return _generic_na(q, k, v, kernel, dil, strd, rpb, scale,
                       to_pair(tile, 'tile') if tile else _DEFAULT_TILE)


@torch.compiler.disable  # torch.compile: a graph break, the banded kernel runs eagerly
def _banded(q, k, v, rpb, plan, scale, keep):
    return _BandedNeighborhoodAttention.apply(q, k, v, rpb, plan, scale, keep)


def _generic_na(q, k, v, kernel, dil, strd, rpb, scale, tile):
    """The generic tiled path (any stride, axes shorter than the kernel), autograd's backward."""
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    tiles = _tables(int(h), int(w), kernel, dil, strd, tile)  # ints also under jit tracing
    dev = q.device
    rh, rw = tiles['grid']
    th, tw = tiles['tile']
    kh, kw = tiles['span']
    bh = b * nh
    n_tiles = rh * rw
    # one row gather each (index_select on dim 0 of a 2-D tensor is a row memcpy), tile-major so
    # that a run of tiles is one contiguous slice: (B*heads*H*W, d) -> query tiles
    # (R, B*heads, Th*Tw, d) and key rectangles (R, B*heads, Kh*Kw, d)
    base = torch.arange(bh, device=dev)[None, :, None] * (h * w)
    qidx = (_constant(tiles['qflat'], dev).view(n_tiles, 1, -1) + base).view(-1)
    kidx = (_constant(tiles['kflat'], dev).view(n_tiles, 1, -1) + base).view(-1)
    qt = q.reshape(bh * h * w, d).index_select(0, qidx).view(n_tiles, bh, th * tw, d)
    kt = k.reshape(bh * h * w, d).index_select(0, kidx).view(n_tiles, bh, kh * kw, d)
    vt = v.reshape(bh * h * w, dv).index_select(0, kidx).view(n_tiles, bh, kh * kw, dv)
    # one additive bias per tile pattern (window mask, + NAT Eq. 2's B(i, j) looked up by the
    # relative offset in the dilation group): (P, 1 or B*heads, Th*Tw, Kh*Kw)
    bias = _constant(tiles['mask'], dev).to(q.dtype)[:, None]
    if rpb is not None:
        bias = rpb.reshape(nh, -1)[:, _constant(tiles['rel'], dev)].to(q.dtype).transpose(0, 1) + \
            bias
        bias = bias.repeat(1, b, 1, 1) if b > 1 else bias
    qt = qt * scale
    # runs of tiles in chunks whose logits stay cache-sized (about 1.5M entries): measured 2x
    # faster than one pass over all tiles at 100x152 on CPU, and the same autograd graph
    chunk = max(1, _CHUNK_LOGITS // (bh * th * tw * kh * kw))
    outs = []
    for start, end, p in tiles['runs']:
        for s in range(start, end, chunk):
            e = min(s + chunk, end)
            # logits of each query of a tile against its key rectangle: (T, B*heads, Th*Tw, Kh*Kw)
            logits = torch.matmul(qt[s:e], kt[s:e].transpose(-1, -2)).add_(bias[p])
            outs.append(torch.matmul(torch.softmax(logits, dim=-1).to(vt.dtype), vt[s:e]))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)  # R B*heads Th*Tw dv
    # token t of batch-head j sits in tile inverse[t] // (Th Tw), slot inverse[t] % (Th Tw)
    inv = _constant(tiles['inverse'], dev)
    tt = th * tw
    oidx = ((inv // tt)[None, :] * bh + torch.arange(bh, device=dev)[:, None]) * tt + \
        (inv % tt)[None, :]
    return out.view(-1, dv).index_select(0, oidx.view(-1)).view(b, nh, h, w, dv)


def _constant(table: np.ndarray, device: torch.device) -> torch.Tensor:
    """A table of the generic path as a tensor on ``device`` (a constant of a traced graph)."""
    return torch.as_tensor(table, device=device)
