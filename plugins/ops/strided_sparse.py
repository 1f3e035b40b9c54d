"""S2-Attention's local-stride block-sparse pattern, sharded over heads, on 2-D tiles.

Paper: Lin et al., "S2-Attention: Hardware-Aware Context Sharding Among Attention Heads" (arXiv
2407.17678); pattern of its kernel library (dkernel ``get_sparse_attn_mask``, the Phi-3-small
kernel): tokens in blocks; block ``j`` is visible to block ``i`` when it is *local*
(``|i - j| < local_blocks``) or *strided* for the head (``(j + o_h) % vert_stride == 0``, where
the offset ``o_h`` differs per head, so that the heads together cover every block:
"heterogeneous context sharding").

In 2-D the blocks are ``th x tw`` tiles at tile coordinates ``(a, b)``; a key tile is local to a
query tile when both tile distances are ``< local_tiles`` (a ``(2L - 1)^2`` neighbourhood of
tiles), and strided for head ``h`` when ``(a + o_a) % V_a == 0`` and ``(b + o_b) % V_b == 0``,
``(o_a, o_b)`` being the head's shard among the ``V_a V_b`` shards (head ``h`` takes shard
``h mod V_a V_b``). The pattern is symmetric (non-causal): the dkernel kernel only runs causal
attention, which has no meaning on an image.

Computed per head as one softmax over two disjoint key sets: the head's strided tiles (shared by
all its queries: fused SDPA, no logits kept) and the local tiles that are not strided (explicit,
gathered once per query tile), merged exactly (see :func:`_s2_sparse`). Padded tokens (the
map is padded to tile multiples) are masked as keys. Cost per head ``O(N ((2L - 1)^2 th tw +
N / (V_a V_b)) d)`` time, i.e. a ``1 / (V_a V_b)`` fraction of global attention plus a local
window; memory ``O(N (2L - 1)^2 th tw)`` for the local logits, ``O(N d)`` for the strided part.
On small maps, where those whole tiles are most of the map anyway, the same pattern runs as a
dense mask through fused SDPA instead (:func:`s2_uses_dense`, with the measured cross-over).
"""
import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['s2_attention_2d', 's2_head_shards', 's2_attention_mask', 's2_uses_dense']


def s2_head_shards(num_heads: int, vert_stride: Tuple[int, int]) -> torch.Tensor:
    """``(heads, 2)`` shard offsets ``(o_a, o_b)`` of each head: shard ``h mod V_a V_b``."""
    va, vb = vert_stride
    shard = torch.arange(num_heads) % (va * vb)
    return torch.stack([shard // vb, shard % vb], dim=1)


def s2_attention_mask(size: Tuple[int, int], tile: Tuple[int, int], local_tiles: int,
                      vert_stride: Tuple[int, int], num_heads: int) -> torch.Tensor:
    """Dense ``(heads, N, N)`` bool mask of the pattern on an ``H x W`` map (True = attended):
    the specification; for small maps only."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ta, tb = ys.flatten() // tile[0], xs.flatten() // tile[1]
    local = ((ta[:, None] - ta[None]).abs() < local_tiles) & \
            ((tb[:, None] - tb[None]).abs() < local_tiles)
    shards = s2_head_shards(num_heads, vert_stride)
    strided = ((ta[None] + shards[:, :1]) % vert_stride[0] == 0) & \
              ((tb[None] + shards[:, 1:]) % vert_stride[1] == 0)         # heads N(k)
    return local[None] | strided[:, None, :]


@functools.lru_cache(maxsize=32)
def _tables(h: int, w: int, tile: Tuple[int, int], local_tiles: int,
            vert_stride: Tuple[int, int], num_heads: int):
    """Index tables of one map size: neighbour tiles, the strided tiles of every head, and the
    masks of real tokens, existing tiles and keys counted by the strided part."""
    th, tw = tile
    na, nb = -(-h // th), -(-w // tw)
    tt = th * tw
    # which slots of each tile (tile-major order of the padded map) are real tokens
    ys = torch.arange(na)[:, None, None, None] * th + torch.arange(th)[None, None, :, None]
    xs = torch.arange(nb)[None, :, None, None] * tw + torch.arange(tw)[None, None, None, :]
    real = ((ys < h) & (xs < w)).reshape(na * nb, tt)                    # nT T
    # the (2L-1)^2 neighbour tiles of every tile, and whether they exist
    r = torch.arange(-(local_tiles - 1), local_tiles)
    da, db = (t.flatten() for t in torch.meshgrid(r, r, indexing='ij'))
    ta = torch.arange(na)[:, None, None] + da[None, None]               # na 1 L2
    tb = torch.arange(nb)[None, :, None] + db[None, None]               # 1 nb L2
    inside = ((ta >= 0) & (ta < na) & (tb >= 0) & (tb < nb)).reshape(na * nb, -1)
    ta, tb = ta.clamp(0, na - 1).expand(na, nb, -1), tb.clamp(0, nb - 1).expand(na, nb, -1)
    nbr = (ta * nb + tb).reshape(na * nb, -1)                           # nT L2
    local_ok = (inside[:, :, None] & real[nbr]).reshape(na * nb, -1)    # nT L2*T
    # each head's strided tiles, padded to the largest count; a padded slot or padded token gets
    # a key bias of "minus infinity"
    shards = s2_head_shards(num_heads, vert_stride)
    is_strided = ((torch.arange(na)[None, :, None] + shards[:, 0, None, None]) % vert_stride[0]
                  == 0) & ((torch.arange(nb)[None, None, :] + shards[:, 1, None, None])
                           % vert_stride[1] == 0)                       # heads na nb
    is_strided = is_strided.reshape(num_heads, -1)
    n_s = max(1, int(is_strided.sum(1).max()))
    strided = torch.zeros(num_heads, n_s, dtype=torch.long)
    s_ok = torch.zeros(num_heads, n_s, dtype=torch.bool)
    for i in range(num_heads):
        tiles = is_strided[i].nonzero().flatten()
        strided[i, :len(tiles)], s_ok[i, :len(tiles)] = tiles, True
    key_ok = (s_ok[:, :, None] & real[strided]).reshape(num_heads, -1)  # heads S*T
    # a local key whose tile is also one of the head's strided tiles is counted by the strided
    # part, so the local part leaves it out
    dup = is_strided[:, nbr] & inside[None]                             # heads nT L2
    local_only = local_ok[None] & ~dup[..., None].expand(-1, -1, -1, tt).reshape(
        num_heads, na * nb, -1)
    return dict(grid=(na, nb), padded=(na * th, nb * tw), nbr=nbr, local_ok=local_ok,
                local_only=local_only, strided=strided, key_ok=key_ok)


def _to_tiles(x: torch.Tensor, tile: Tuple[int, int], padded: Tuple[int, int]) -> torch.Tensor:
    """``(B, heads, H, W, d) -> (B, heads, nT, th tw, d)``, zero-padded to ``padded``."""
    b, nh, h, w, d = x.shape
    hp, wp = padded
    th, tw = tile
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    x = x.view(b, nh, hp // th, th, wp // tw, tw, d).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, nh, (hp // th) * (wp // tw), th * tw, d)


# The sparse path pays per key about 1.3-2.3 times what fused dense attention pays (explicit
# local logits, the merge, fixed per-call work), and on a small map its key set (whole tiles: the
# (2L - 1)^2 neighbours plus the largest strided shard) is most of the map or more. Measured
# fwd + bwd (CPU, fp32, one thread, S2Attention2d, C = 64, tile 8, L = 2; sparse / dense ms, key
# fraction = sparse keys per query / N):
#   2 heads, (1, 2):  28x28 31.2 / 11.0 (1.39)   36x36 56.8 / 27.7 (1.19)   42x42 92.7 / 52.2 (0.98)
#                     48x48 93.7 / 85.7 (0.75)   56x56 161.5 / 159.7 (0.76)
#   8 heads, (2, 4):  28x28 83.1 / 40.1 (0.90)   42x42 211.9 / 191.8 (0.54)
#                     56x56 309.8 / 596.6 (0.35)
# Below a fraction of 0.8 dense wins by at most 10 % but its cached (heads, N, N) float mask
# grows as N^2 (4.9 MB at 28x28 x 2 heads, 79 MB at 56x56), so the sparse path takes over there.
DENSE_KEY_FRACTION = 0.8


def _sparse_keys_per_query(h: int, w: int, tile: Tuple[int, int], local_tiles: int,
                           vert_stride: Tuple[int, int]) -> int:
    """Keys the sparse path computes per query: the ``(2L - 1)^2`` neighbour tiles and the largest
    strided shard (``ceil(n_a / V_a) ceil(n_b / V_b)`` tiles), in whole tiles."""
    na, nb = -(-h // tile[0]), -(-w // tile[1])
    span = 2 * local_tiles - 1
    local = min(span, na) * min(span, nb)
    strided = -(-na // vert_stride[0]) * -(-nb // vert_stride[1])
    return (local + strided) * tile[0] * tile[1]


def s2_uses_dense(h: int, w: int, tile: Tuple[int, int], local_tiles: int,
                  vert_stride: Tuple[int, int]) -> bool:
    """Whether :func:`s2_attention_2d` runs the dense masked path on an ``H x W`` map: when the
    sparse path would compute at least :data:`DENSE_KEY_FRACTION` of the map's keys per query."""
    keys = _sparse_keys_per_query(h, w, tuple(tile), local_tiles, tuple(vert_stride))
    return keys >= DENSE_KEY_FRACTION * h * w


@functools.lru_cache(maxsize=8)
def _additive_mask(h: int, w: int, tile: Tuple[int, int], local_tiles: int,
                   vert_stride: Tuple[int, int], num_heads: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """``(1, heads, N, N)`` additive form (0 / -inf) of :func:`s2_attention_mask`, built once per
    map size: the fused SDPA kernel takes a float 4-D mask without converting it per call (a bool
    mask is turned into a float one on every call: +3 ms at 28x28 x 2 heads)."""
    allowed = s2_attention_mask((h, w), tile, local_tiles, vert_stride, num_heads)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float('-inf'))
    return mask[None].to(device)


def _s2_dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: Tuple[int, int],
              local_tiles: int, vert_stride: Tuple[int, int], scale: float) -> torch.Tensor:
    """The pattern as a dense mask (the specification, :func:`s2_attention_mask`) through fused
    SDPA: ``O(N^2)`` per head, no logits kept (``O(N d)`` memory beyond the cached mask)."""
    b, nh, h, w, _ = q.shape
    mask = _additive_mask(h, w, tuple(tile), local_tiles, tuple(vert_stride), nh, q.dtype,
                          q.device)
    out = F.scaled_dot_product_attention(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3),
                                         attn_mask=mask, scale=scale)
    return out.view(b, nh, h, w, v.shape[-1])


def s2_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: Tuple[int, int],
                    local_tiles: int, vert_stride: Tuple[int, int],
                    scale: Optional[float] = None) -> torch.Tensor:
    """S2 local-stride sparse attention on a map.

    Args:
        q, k: ``(B, heads, H, W, d)``; v: ``(B, heads, H, W, d_v)``; any H, W (padded to tiles).
        tile: ``(th, tw)`` tokens per tile (the paper's block of 64 tokens: 8 x 8).
        local_tiles: ``L`` (dkernel's ``local_blocks``, the query's own tile included): key tiles
            at tile distance ``< L`` on both axes.
        vert_stride: ``(V_a, V_b)``; needs ``heads >= V_a V_b`` for the heads to cover all tiles.
        scale: default ``d ** -0.5``.

    Small maps (:func:`s2_uses_dense`: the sparse key set would be most of the map) run the same
    pattern as a dense additive mask through fused SDPA (:func:`_s2_dense`), which is faster there
    and keeps no logits; larger maps run the sparse path below (:func:`_s2_sparse`).

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    h, w = q.shape[2:4]
    path = _s2_dense if s2_uses_dense(h, w, tile, local_tiles, vert_stride) else _s2_sparse
    return path(q, k, v, tuple(tile), local_tiles, tuple(vert_stride), scale)


def _s2_sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: Tuple[int, int],
               local_tiles: int, vert_stride: Tuple[int, int], scale: float) -> torch.Tensor:
    """The sparse path of :func:`s2_attention_2d`: ``O(N ((2L - 1)^2 th tw + N / (V_a V_b)) d)``.

    How: one softmax over two disjoint key sets, computed apart and merged exactly. The strided
    tiles of a head (shared by all its queries) go through fused SDPA (``O(N d)`` memory, no
    logits kept) with one extra key per query, of logit ``c`` (the query's largest local logit)
    and value ``(0, ..., 0, 1)``: the output is ``(A, p0)`` with ``A = sum_S e^s v / D``, ``p0 =
    e^c / D``, ``D = sum_S e^s + e^c``. The local tiles (minus the head's strided ones) are
    explicit: ``n = sum_L e^(s - c) v``, ``z = sum_L e^(s - c)``. Then the softmax over the union
    is ``(A + p0 n) / (1 - p0 + p0 z)``; the denominator is at least 1/2 (the largest local key
    is either local-only, ``z >= 1``, or strided, ``p0 <= 1/2``), and ``c`` cancels, so it
    carries no gradient.
    """
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    t = _tables(h, w, tile, local_tiles, vert_stride, nh)
    dev, dt = q.device, q.dtype
    (na, nb), padded = t['grid'], t['padded']
    n_t, tt = na * nb, tile[0] * tile[1]
    qt = _to_tiles(q, tile, padded) * scale                                # B h nT T d
    kt, vt = _to_tiles(k, tile, padded), _to_tiles(v, tile, padded)
    # local part, explicit: logits against the neighbour tiles
    nbr = t['nbr'].to(dev)
    logits = qt @ kt[:, :, nbr].flatten(3, 4).transpose(-1, -2)            # B h nT T L2*T
    logits = logits.masked_fill(~t['local_ok'].to(dev)[:, None], float('-inf'))
    c = logits.detach().amax(-1, keepdim=True)                             # B h nT T 1
    e = torch.exp(logits - c).masked_fill(~t['local_only'].to(dev)[:, :, None], 0.0)
    n_loc = e @ vt[:, :, nbr].flatten(3, 4)                                # B h nT T dv
    z_loc = e.sum(-1, keepdim=True)
    # strided part, fused: the head's strided keys plus one per-query key of logit c, through
    # two extra dims (q: [c, 1], k: [0, key bias], extra key: [1, 0])
    heads = torch.arange(nh, device=dev)[:, None]
    strided = t['strided'].to(dev)
    k_s = kt[:, heads, strided].flatten(2, 3)                              # B h S*T d
    v_s = vt[:, heads, strided].flatten(2, 3)
    n_s = k_s.shape[2]
    neg = torch.finfo(dt).min / 2
    key_bias = torch.zeros(nh, n_s, dtype=dt, device=dev).masked_fill_(
        ~t['key_ok'].to(dev), neg)
    # q, k, v padded to one head size (the fused CPU kernel needs equal sizes)
    size = max(d + 2, dv + 1)
    q_ext = F.pad(torch.cat([qt.flatten(2, 3), c.flatten(2, 3), torch.ones_like(c.flatten(2, 3))],
                            -1), (0, size - d - 2))
    k_ext = F.pad(torch.cat([k_s, torch.zeros_like(k_s[..., :1]),
                             key_bias[None, :, :, None].expand(b, -1, -1, -1)], -1),
                  (0, size - d - 2))
    v_ext = F.pad(v_s, (0, size - dv))
    extra = torch.zeros(b, nh, 1, size, dtype=dt, device=dev)
    extra_k, extra_v = extra.clone(), extra
    extra_k[..., d] = 1
    extra_v[..., dv] = 1
    out = F.scaled_dot_product_attention(q_ext, torch.cat([k_ext, extra_k], 2),
                                         torch.cat([v_ext, extra_v], 2), scale=1.0)
    a, p0 = out[..., :dv], out[..., dv:dv + 1]
    a, p0 = a.view(b, nh, n_t, tt, dv), p0.view(b, nh, n_t, tt, 1)
    out = (a + p0 * n_loc) / (1 - p0 + p0 * z_loc)
    out = out.view(b, nh, na, nb, tile[0], tile[1], dv).permute(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(b, nh, padded[0], padded[1], dv)[:, :, :h, :w]
