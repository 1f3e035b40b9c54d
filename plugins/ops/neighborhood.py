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
``Th x Tw`` (per dilation group); each tile attends to the smallest key rectangle that holds every
window of its queries, with an additive ``0 / -inf`` mask that keeps each query's own ``k x k``
window: a blocked, gather-once GEMM in the spirit of Faster NA. Tiles and key rectangles are read
with one ``index_select`` each from index tables built once per shape. Memory is
``O(tokens x (Th+k-1)(Tw+k-1) / (Th Tw))`` per head, i.e. ``O(tokens x k^2)``; never ``tokens^2``.
"""
import functools
from typing import Optional, Sequence, Tuple, Union

import torch

from .utils import to_pair

IntPair = Union[int, Sequence[int]]

__all__ = ['neighborhood_attention_2d', 'neighborhood_window_starts', 'natten_can_serve']

# query tile per axis, chosen by measurement (benchmarks/results/mixers.md): 8 rows x 8 cols
_DEFAULT_TILE = (8, 8)
_CHUNK_LOGITS = 3 * 2 ** 19  # logits entries per chunk of tiles


def neighborhood_window_starts(length: int, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Start of each query's window along one axis of one dilation group (NATTEN's definition).

    The leader of query ``i`` is ``min((i // s) * s + s // 2, L - 1)``; the window starts at
    ``clamp(leader - k // 2, 0, L - k)``, so it is shifted inward at the borders. When the axis is
    shorter than the kernel (``L < k``) the window is the whole axis.
    """
    i = torch.arange(length)
    leader = torch.clamp((i // stride) * stride + stride // 2, max=length - 1)
    return torch.clamp(leader - kernel_size // 2, min=0, max=max(length - kernel_size, 0))


def _axis_tables(length: int, kernel: int, dilation: int, stride: int, tile: int):
    """Tiling of one axis: for every query tile (over all dilation groups) the original positions
    of its queries and of its key span, the 0/1 window mask and the relative offsets.
    """
    groups = []
    span = 0
    for a in range(min(dilation, length)):
        n = len(range(a, length, dilation))
        ke = min(kernel, n)
        ws = neighborhood_window_starts(n, kernel, stride)
        nt = -(-n // tile)
        for t in range(nt):
            lo, hi = t * tile, min(t * tile + tile, n)
            span = max(span, int(ws[hi - 1]) + ke - int(ws[lo]))
        groups.append((a, n, ke, ws, nt))
    rows_q, rows_k, rows_ok, rows_rel = [], [], [], []
    for a, n, ke, ws, nt in groups:
        span_a = min(span, n)
        for t in range(nt):
            qi = torch.arange(t * tile, t * tile + tile)
            qvalid = qi < n
            qc = torch.clamp(qi, max=n - 1)  # padded queries copy the last query's window
            start = max(0, min(int(ws[t * tile]), n - span))
            ki = start + torch.arange(span)
            kvalid = torch.arange(span) < span_a
            wq = ws[qc]
            ok = (ki[None, :] >= wq[:, None]) & (ki[None, :] < wq[:, None] + ke) & kvalid[None, :]
            rows_q.append(torch.where(qvalid, a + dilation * qi, -1))
            rows_k.append(torch.where(kvalid, a + dilation * ki, 0))
            rows_ok.append(ok)
            rows_rel.append(torch.clamp(ki[None, :] - qc[:, None] + kernel - 1, 0, 2 * kernel - 2))
    return (torch.stack(rows_q), torch.stack(rows_k), torch.stack(rows_ok), torch.stack(rows_rel))


def _row_patterns(ok: torch.Tensor, rel: torch.Tensor):
    """Ids of the distinct (mask, offsets) patterns of one axis's tiles, and one of each."""
    key = torch.cat([ok.flatten(1).long(), rel.flatten(1)], dim=1)
    uniq, ids = torch.unique(key, dim=0, return_inverse=True)
    first = torch.stack([(ids == u).nonzero()[0, 0] for u in range(len(uniq))])
    return ids, ok[first], rel[first]


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
    order = torch.argsort(pattern, stable=True)
    # (Rh, Rw, Th, Tw) flat query index; -1 marks a padded query slot
    qvalid = (qh[:, None, :, None] >= 0) & (qw[None, :, None, :] >= 0)
    qflat = torch.where(qvalid, qh[:, None, :, None] * width + qw[None, :, None, :], 0)
    qflat = qflat.reshape(rh * rw, -1)[order].reshape(-1)
    valid = qvalid.reshape(rh * rw, -1)[order].reshape(-1)
    kflat = (kh[:, None, :, None] * width + kw[None, :, None, :]).reshape(rh * rw, -1)
    kflat = kflat[order].reshape(-1)
    inverse = torch.empty(height * width, dtype=torch.long)
    inverse[qflat[valid]] = torch.arange(qflat.numel())[valid]
    # per pattern: additive 0 / -inf mask (P, Th*Tw, Kh*Kw), rows and columns separable, and the
    # flat index into a (2k-1)^2 relative position bias table, same layout
    mask = torch.where(okh[:, None, :, None, :, None] & okw[None, :, None, :, None, :], 0.0,
                       float('-inf')).reshape(len(okh) * len(okw), th * tw, -1)
    rel = (relh[:, None, :, None, :, None] * (2 * kernel[1] - 1)
           + relw[None, :, None, :, None, :]).reshape(len(okh) * len(okw), th * tw, -1)
    sorted_pattern = pattern[order]
    bounds = [0] + (torch.nonzero(sorted_pattern[1:] != sorted_pattern[:-1])[:, 0] + 1).tolist()
    runs = [(s, e, int(sorted_pattern[s])) for s, e in zip(bounds, bounds[1:] + [rh * rw])]
    return dict(qflat=qflat, kflat=kflat, inverse=inverse, mask=mask, rel=rel, runs=runs,
                grid=(rh, rw), tile=(th, tw), span=(kh.shape[1], kw.shape[1]))


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
    """Whether ``natten.na2d`` computes this call with the same result (no relative position bias,
    a head_dim it supports, ``kernel * dilation <= H, W``, and no CPU backward)."""
    if rpb is not None or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    d = q.shape[-1]
    if d < 8 or d > 512 or d & (d - 1):
        return False
    h, w = q.shape[2:4]
    if kernel[0] * dilation[0] > h or kernel[1] * dilation[1] > w:
        return False
    if q.device.type == 'cpu' and torch.is_grad_enabled() and q.requires_grad:
        return False  # natten's CPU (flex) backend has no backward
    if q.device.type == 'cpu':
        return False  # its CPU path is eager flex attention: correct but far slower than ours
    return _natten() is not None


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
        tile: query tile per axis for the pure-PyTorch path (default 8 x 8).
        use_natten: None = use ``natten.na2d`` when it can serve the call with the same result
            (see :func:`natten_can_serve`), False = never, True = require it.

    An axis of a dilation group shorter than the kernel attends to the whole of that axis
    (NATTEN refuses ``k * delta > H``; callers such as the mixers clamp dilation instead).

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
    if use_natten or (use_natten is None and natten_can_serve(q, kernel, dil, strd, rpb)):
        natten = _natten()
        if natten is None:
            raise RuntimeError('use_natten=True but natten is not importable')
        out = natten.na2d(q.transpose(1, 3).transpose(1, 2), k.transpose(1, 3).transpose(1, 2),
                          v.transpose(1, 3).transpose(1, 2), kernel_size=kernel, stride=strd,
                          dilation=dil, scale=scale)
        return out.permute(0, 3, 1, 2, 4)  # B H W heads d -> B heads H W d
    tile = to_pair(tile, 'tile') if tile is not None else _DEFAULT_TILE
    tiles = _tables(h, w, kernel, dil, strd, tile)
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
    qidx = (tiles['qflat'].to(dev).view(n_tiles, 1, -1) + base).view(-1)
    kidx = (tiles['kflat'].to(dev).view(n_tiles, 1, -1) + base).view(-1)
    qt = q.reshape(bh * h * w, d).index_select(0, qidx).view(n_tiles, bh, th * tw, d)
    kt = k.reshape(bh * h * w, d).index_select(0, kidx).view(n_tiles, bh, kh * kw, d)
    vt = v.reshape(bh * h * w, dv).index_select(0, kidx).view(n_tiles, bh, kh * kw, dv)
    # one additive bias per tile pattern (window mask, + NAT Eq. 2's B(i, j) looked up by the
    # relative offset in the dilation group): (P, 1 or B*heads, Th*Tw, Kh*Kw)
    bias = tiles['mask'].to(dev, q.dtype)[:, None]
    if rpb is not None:
        bias = rpb.reshape(nh, -1)[:, tiles['rel'].to(dev)].to(q.dtype).transpose(0, 1) + bias
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
    inv = tiles['inverse'].to(dev)
    tt = th * tw
    oidx = ((inv // tt)[None, :] * bh + torch.arange(bh, device=dev)[:, None]) * tt + \
        (inv % tt)[None, :]
    return out.view(-1, dv).index_select(0, oidx.view(-1)).view(b, nh, h, w, dv)
