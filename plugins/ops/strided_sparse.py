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

Computed per head as two key sets in one softmax: the ``(2L - 1)^2`` neighbour tiles of each query
tile (gathered once per tile), and the head's strided tiles (shared by all its queries, minus those
already local, so no key counts twice). Padded tokens (the map is padded to tile multiples) are
masked as keys. Cost per head ``O(N ((2L - 1)^2 th tw + N / (V_a V_b)) d)`` time and logits
memory: the strided part is a ``1 / (V_a V_b)`` fraction of global attention.
"""
import functools
from typing import Optional, Tuple

import torch

__all__ = ['s2_attention_2d', 's2_head_shards', 's2_attention_mask']


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
    th, tw = tile
    na, nb = -(-h // th), -(-w // tw)
    hp, wp = na * th, nb * tw
    # tile-major token order of the padded map, and which slots are real tokens
    ys = torch.arange(na)[:, None, None, None] * th + torch.arange(th)[None, None, :, None]
    xs = torch.arange(nb)[None, :, None, None] * tw + torch.arange(tw)[None, None, None, :]
    real = ((ys < h) & (xs < w)).reshape(na * nb, th * tw)               # nT T
    # local neighbour tiles of every tile: (nT, (2L-1)^2) tile index and validity
    r = torch.arange(-(local_tiles - 1), local_tiles)
    na_, nb_ = torch.meshgrid(r, r, indexing='ij')
    ta = torch.arange(na)[:, None, None] + na_.flatten()[None, None]     # na 1 L2
    tb = torch.arange(nb)[None, :, None] + nb_.flatten()[None, None]     # 1 nb L2
    ok = (ta >= 0) & (ta < na) & (tb >= 0) & (tb < nb)
    nbr = torch.where(ok, ta.clamp(0, na - 1) * nb + tb.clamp(0, nb - 1), 0).reshape(na * nb, -1)
    ok = ok.reshape(na * nb, -1)
    local_mask = (ok[:, :, None] & real[nbr]).reshape(na * nb, -1)       # nT L2*T
    # strided tiles of every head, padded to the largest count
    shards = s2_head_shards(num_heads, vert_stride)
    a_all, b_all = torch.arange(na), torch.arange(nb)
    lists = []
    for oa, ob in shards.tolist():
        sa = a_all[(a_all + oa) % vert_stride[0] == 0]
        sb = b_all[(b_all + ob) % vert_stride[1] == 0]
        lists.append((sa[:, None] * nb + sb[None]).flatten())
    n_s = max(1, max(len(t) for t in lists))
    strided = torch.zeros(num_heads, n_s, dtype=torch.long)
    s_ok = torch.zeros(num_heads, n_s, dtype=torch.bool)
    for i, t in enumerate(lists):
        strided[i, :len(t)] = t
        s_ok[i, :len(t)] = True
    # a strided tile that is also local to the query tile is already among the local keys
    qa, qb = torch.arange(na * nb) // nb, torch.arange(na * nb) % nb
    sa, sb = strided // nb, strided % nb
    near = ((qa[None, :, None] - sa[:, None, :]).abs() < local_tiles) & \
           ((qb[None, :, None] - sb[:, None, :]).abs() < local_tiles)  # heads nT S
    s_mask = (s_ok[:, None, :] & ~near)[..., None] & real[strided][:, None]  # heads nT S T
    return dict(grid=(na, nb), padded=(hp, wp), nbr=nbr, local_mask=local_mask,
                strided=strided, strided_mask=s_mask.reshape(num_heads, na * nb, -1))


def _to_tiles(x: torch.Tensor, tile: Tuple[int, int], padded: Tuple[int, int]) -> torch.Tensor:
    """``(B, heads, H, W, d) -> (B, heads, nT, th tw, d)``, zero-padded to ``padded``."""
    b, nh, h, w, d = x.shape
    hp, wp = padded
    th, tw = tile
    if (hp, wp) != (h, w):
        x = torch.nn.functional.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    x = x.view(b, nh, hp // th, th, wp // tw, tw, d).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, nh, (hp // th) * (wp // tw), th * tw, d)


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

    Returns:
        ``(B, heads, H, W, d_v)``.
    """
    b, nh, h, w, d = q.shape
    dv = v.shape[-1]
    scale = d ** -0.5 if scale is None else scale
    t = _tables(h, w, tuple(tile), local_tiles, tuple(vert_stride), nh)
    dev = q.device
    (na, nb), padded = t['grid'], t['padded']
    n_t, tt = na * nb, tile[0] * tile[1]
    qt = _to_tiles(q, tile, padded) * scale                                # B h nT T d
    kt, vt = _to_tiles(k, tile, padded), _to_tiles(v, tile, padded)
    nbr = t['nbr'].to(dev)
    k_loc = kt[:, :, nbr].flatten(3, 4)                                    # B h nT L2*T d
    v_loc = vt[:, :, nbr].flatten(3, 4)
    heads = torch.arange(nh, device=dev)[:, None]
    strided = t['strided'].to(dev)
    k_str = kt[:, heads, strided].flatten(2, 3)                            # B h S*T d
    v_str = vt[:, heads, strided].flatten(2, 3)
    loc_bias = torch.zeros(t['local_mask'].shape, dtype=q.dtype, device=dev)
    loc_bias.masked_fill_(~t['local_mask'].to(dev), float('-inf'))
    str_bias = torch.zeros(t['strided_mask'].shape, dtype=q.dtype, device=dev)
    str_bias.masked_fill_(~t['strided_mask'].to(dev), float('-inf'))
    logits_loc = qt @ k_loc.transpose(-1, -2) + loc_bias[:, None]          # B h nT T L2*T
    logits_str = (qt.flatten(2, 3) @ k_str.transpose(-1, -2)).view(b, nh, n_t, tt, -1)
    logits_str = logits_str + str_bias[:, :, None]                         # B h nT T S*T
    n_loc = logits_loc.shape[-1]
    attn = torch.softmax(torch.cat([logits_loc, logits_str], dim=-1), dim=-1)
    out = attn[..., :n_loc] @ v_loc + \
        (attn[..., n_loc:].flatten(2, 3) @ v_str).view(b, nh, n_t, tt, dv)
    out = out.view(b, nh, na, nb, tile[0], tile[1], dv).permute(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(b, nh, padded[0], padded[1], dv)[:, :, :h, :w]
