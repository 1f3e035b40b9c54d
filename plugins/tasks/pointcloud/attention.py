"""Disassembled window attention of ConDaFormer, with local structure enhancement.

Duan et al., "ConDaFormer: Disassembled Transformer with Local Structure Enhancement for 3D Point
Cloud Understanding", NeurIPS 2023, arXiv 2312.11112.

A cubic ``w x w x w`` window is disassembled into three orthogonal planes (Sec. 3.2): the heads are
split in three groups, group 0 attends within ``(w, w, 1)`` windows (xy plane), group 1 within
``(w, 1, w)`` (xz) and group 2 within ``(1, w, w)`` (yz); shifted blocks move every window by half
its size. The contextual relative position encoding (Eq. 3-4, after Stratified Transformer /
SphereFormer) adds, for a query ``i`` and key ``j`` with quantised in-window offset
``r = quant(i) - quant(j) + L - 1`` per axis,

    logit_ij = q_i . k_j + q_i . sum_c Tq[r_c, c] + k_j . sum_c Tk[r_c, c]
    out_i    = sum_j softmax_j(logit_ij) (v_j + sum_c Tv[r_c, c])

with tables ``(2L - 1, 3, heads / 3, head_dim)`` shared by the three planes, ``L = w / quant``.

Implementation: points are sorted by window key, windows grouped by size into buckets padded to a
few sizes (1.5x steps), and each bucket runs as masked batched attention; memory is
``sum(windows) * padded_size^2``, linear in points for a bounded window occupancy.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.init import trunc_normal_

from .sparse import PointBatchNorm1d, SparseVoxels, SubMConv3d, pack_keys

#: The thin axis of each plane's window: xy windows are one unit thick in z, and so on.
PLANE_THIN_AXIS = (2, 1, 0)


def plane_window(window_size: float, plane: int) -> Tuple[float, float, float]:
    """Window extent of plane ``plane`` (0: xy, 1: xz, 2: yz)."""
    size = [float(window_size)] * 3
    size[PLANE_THIN_AXIS[plane]] = 1.0
    return tuple(size)


def window_keys(xyz: torch.Tensor, batch: torch.Tensor, window: Sequence[float],
                quant_size: float, shift: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Window id of each point and its quantised position inside the window.

    As the official code: the grid starts at the minimum of ``xyz`` over the whole batch;
    shifted windows add half a window to the positions.
    """
    w = xyz.new_tensor(window)
    shift_size = w / 2 if shift else 0.0
    origin = xyz.min(0).values
    win = torch.div(xyz + shift_size - origin, w, rounding_mode='floor').long()
    grid_len = torch.tensor([int((s + 1e-4) / quant_size) for s in window], device=xyz.device)
    quant = torch.div(torch.remainder(xyz - origin + shift_size, w), quant_size,
                      rounding_mode='floor').long()
    quant = torch.minimum(quant.clamp_(min=0), grid_len - 1)  # a float edge case at w
    return pack_keys(batch, win), quant


def _bucket_sizes(counts: torch.Tensor) -> torch.Tensor:
    """Padded size of each window: the next of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (1.5x steps)."""
    c = counts.float().clamp(min=1)
    p2 = torch.pow(2.0, torch.ceil(torch.log2(c)))
    p3 = torch.pow(2.0, torch.ceil(torch.log2(c / 3))) * 3
    return torch.minimum(p2, torch.where(p3 >= c, p3, p2)).long()


def window_attention(q, k, v, win_key, quant, grid_len: int, q_table, k_table, v_table,
                     max_elements: int = 1 << 24) -> torch.Tensor:
    """Attention within windows with contextual RPE (see the module docstring).

    Args:
        q, k, v: ``(N, h, d)``; ``q`` already scaled.
        win_key: ``(N,)`` window id; quant: ``(N, 3)`` quantised in-window position.
        grid_len: ``L``; tables: ``(2L - 1, 3, h, d)``.
        max_elements: bound on ``windows * heads * P * P`` of one batched step.

    Returns:
        ``(N, h, d)``.
    """
    n, h, d = q.shape
    _, window, counts = torch.unique(win_key, return_inverse=True, return_counts=True)
    order = torch.argsort(window, stable=True)
    window_sorted = window[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n, device=q.device) - starts[window_sorted]
    padded = _bucket_sizes(counts)
    # per-point projections on the tables: (N, h, 3, 2L - 1)
    q_proj = torch.einsum('nhd,lchd->nhcl', q, q_table.to(q.dtype))
    k_proj = torch.einsum('nhd,lchd->nhcl', k, k_table.to(k.dtype))
    pad = lambda t: torch.cat([t, t.new_zeros((1,) + t.shape[1:])])  # noqa: E731
    q_pad, k_pad, v_pad = pad(q), pad(k), pad(v)
    qp_pad, kp_pad, quant_pad = pad(q_proj), pad(k_proj), pad(quant)
    num_rel = 2 * grid_len - 1
    out_idx: List[torch.Tensor] = []
    out_val: List[torch.Tensor] = []
    for size in torch.unique(padded).tolist():
        wins = torch.nonzero(padded == size).flatten()
        local = torch.full_like(counts, -1)
        local[wins] = torch.arange(len(wins), device=q.device)
        member = local[window_sorted] >= 0
        idx = torch.full((len(wins), size), n, dtype=torch.long, device=q.device)
        idx[local[window_sorted[member]], slot[member]] = order[member]
        step = max(1, max_elements // (h * size * size))
        for start in range(0, len(wins), step):
            sub = idx[start:start + step]  # (w, P) point indices, n = padding
            valid = sub < n
            nw, p = sub.shape
            flat = sub.reshape(-1)

            def take(t):  # rows of t for the (w, P) slots: (w, P, ...)
                return t.index_select(0, flat).view((nw, p) + t.shape[1:])

            qq = take(q_pad).transpose(1, 2)  # (w, P, h, d) -> (w, h, P, d)
            kk = take(k_pad).transpose(1, 2)
            vv = take(v_pad).transpose(1, 2)
            pos = take(quant_pad)  # (w, P, 3)
            rel = pos[:, :, None, :] - pos[:, None, :, :] + grid_len - 1  # (w, a, b, 3)
            rel = rel.clamp_(0, num_rel - 1)
            # index[w, h, a, c, b] = rel[w, a, b, c]
            idx_ab = rel.permute(0, 1, 3, 2)[:, None].expand(nw, h, p, 3, p)
            idx_ba = rel.permute(0, 2, 3, 1)[:, None].expand(nw, h, p, 3, p)
            bias_q = take(qp_pad).transpose(1, 2).gather(-1, idx_ab).sum(3)  # (w, h, a, b)
            bias_k = take(kp_pad).transpose(1, 2).gather(-1, idx_ba).sum(3).transpose(-1, -2)
            logits = qq @ kk.transpose(-1, -2) + bias_q + bias_k
            logits = logits.masked_fill(~valid[:, None, None, :], float('-inf'))
            attn = logits.softmax(-1)
            out = attn @ vv
            # value RPE: histogram of the attention over relative positions, times the table
            hist = attn.new_zeros(nw, h, p, 3, num_rel).scatter_add(
                -1, idx_ab, attn[:, :, :, None, :].expand(nw, h, p, 3, p))
            out = out + torch.einsum('whacl,lchd->whad', hist, v_table.to(out.dtype))
            out = out.transpose(1, 2)  # (w, P, h, d)
            out_idx.append(sub[valid])
            out_val.append(out[valid])
    return q.new_zeros(n, h, d).index_copy(0, torch.cat(out_idx), torch.cat(out_val).to(q.dtype))


def disassembled_window_attention(q, k, v, xyz, batch, window_size: float, quant_size: float,
                                  shift: bool, q_table, k_table, v_table,
                                  max_elements: int = 1 << 24) -> torch.Tensor:
    """ConDaFormer's attention: heads in three groups on the xy, xz and yz plane windows.

    Args:
        q, k, v: ``(N, H, d)`` with ``H`` divisible by 3 (``q`` already scaled).
        xyz: ``(N, 3)`` positions in units of the level's voxel; batch: ``(N,)`` cloud index.
        window_size, quant_size: in the same units; tables ``(2L - 1, 3, H / 3, d)``.
    """
    heads = q.shape[1]
    if heads % 3:
        raise ValueError(f'the number of heads must be divisible by 3 (three planes), got {heads}')
    group = heads // 3
    grid_len = int((window_size + 1e-4) / quant_size)
    if q_table.shape[0] != 2 * grid_len - 1:
        raise ValueError(f'RPE tables have {q_table.shape[0]} rows, window_size / quant_size = '
                         f'{grid_len} needs {2 * grid_len - 1}')
    outs = []
    for plane in range(3):
        heads_of_plane = slice(plane * group, (plane + 1) * group)
        key, quant = window_keys(xyz, batch, plane_window(window_size, plane), quant_size, shift)
        outs.append(window_attention(q[:, heads_of_plane], k[:, heads_of_plane],
                                     v[:, heads_of_plane], key, quant, grid_len, q_table,
                                     k_table, v_table, max_elements))
    return torch.cat(outs, 1)


class LocalStructureEnhancement(nn.Module):
    """LSE (Sec. 3.3): ``[1x1 sparse conv -> C/2, depth-wise 3x3x3 sparse conv -> C/2]``.

    The depth-wise branch is conv, BN, GELU, linear to ``C / 2``, BN; the point-wise branch a
    1x1x1 sparse conv and BN (official ``conv_1`` / ``conv_3``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pointwise = SubMConv3d(dim, dim // 2, kernel_size=1)
        self.pointwise_norm = PointBatchNorm1d(dim // 2)
        self.depthwise = SubMConv3d(dim, dim, kernel_size=3, groups=dim)
        self.depthwise_norm = PointBatchNorm1d(dim)
        self.act = nn.GELU()
        self.reduce = nn.Linear(dim, dim - dim // 2)
        self.reduce_norm = PointBatchNorm1d(dim - dim // 2)

    def forward(self, x: torch.Tensor, voxels: SparseVoxels) -> torch.Tensor:
        local = self.act(self.depthwise_norm(self.depthwise(x, voxels)))
        return torch.cat([self.pointwise_norm(self.pointwise(x, voxels)),
                          self.reduce_norm(self.reduce(local))], dim=1)


class DisassembledWindowAttention(nn.Module):
    """LSE -> qkv -> disassembled window attention with contextual RPE -> LSE -> proj.

    Args:
        dim: channels; num_heads: divisible by 3.
        window_size, quant_size: window edge and RPE quantisation step, in units of the
            level's voxel (the official ScanNet setting: 10 and 0.25).
        shift: shifted windows (the official blocks alternate, odd blocks shifted).
    """

    def __init__(self, dim: int, num_heads: int, window_size: float, quant_size: float,
                 shift: bool = False, qkv_bias: bool = True, qk_scale=None,
                 proj_drop: float = 0., max_elements: int = 1 << 24) -> None:
        super().__init__()
        if num_heads % 3 or dim % num_heads:
            raise ValueError(f'num_heads must divide dim and be divisible by 3, got dim={dim}, '
                             f'num_heads={num_heads}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.window_size, self.quant_size, self.shift = float(window_size), quant_size, shift
        self.max_elements = max_elements
        grid_len = int((window_size + 1e-4) / quant_size)
        table = (2 * grid_len - 1, 3, num_heads // 3, self.head_dim)
        self.q_table = nn.Parameter(trunc_normal_(torch.zeros(table), std=.02))
        self.k_table = nn.Parameter(trunc_normal_(torch.zeros(table), std=.02))
        self.v_table = nn.Parameter(trunc_normal_(torch.zeros(table), std=.02))
        self.lse_pre = LocalStructureEnhancement(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.lse_post = LocalStructureEnhancement(dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, voxels: SparseVoxels, xyz: torch.Tensor) -> torch.Tensor:
        """x: ``(N, C)`` features of ``voxels``; xyz: ``(N, 3)`` positions in level units."""
        n = x.shape[0]
        qkv = self.qkv(self.lse_pre(x, voxels)).view(n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(1)  # (N, H, d) each
        out = disassembled_window_attention(q * self.scale, k, v, xyz, voxels.batch,
                                            self.window_size, self.quant_size, self.shift,
                                            self.q_table, self.k_table, self.v_table,
                                            self.max_elements)
        out = self.lse_post(out.reshape(n, self.dim), voxels)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, '
                f'quant_size={self.quant_size}, shift={self.shift}')


def dense_reference_attention(q, k, v, xyz, batch, window_size, quant_size, shift,
                              q_table, k_table, v_table) -> torch.Tensor:
    """Explicit ``N x N`` attention with the plane-window mask and the RPE; for tests (small N)."""
    n, heads, _ = q.shape
    group = heads // 3
    grid_len = int((window_size + 1e-4) / quant_size)
    outs = []
    for plane in range(3):
        w = xyz.new_tensor(plane_window(window_size, plane))
        shift_size = w / 2 if shift else 0.0
        origin = xyz.min(0).values
        win = torch.floor((xyz + shift_size - origin) / w)
        pos = torch.floor(torch.remainder(xyz - origin + shift_size, w) / quant_size).long()
        same = (win[:, None] == win[None]).all(-1) & (batch[:, None] == batch[None])
        rel = pos[:, None] - pos[None] + grid_len - 1  # (N, N, 3)
        sl = slice(plane * group, (plane + 1) * group)
        qg, kg, vg = q[:, sl], k[:, sl], v[:, sl]
        tq = sum(q_table[rel[..., c], c] for c in range(3))  # (N, N, g, d)
        tk = sum(k_table[rel[..., c], c] for c in range(3))
        tv = sum(v_table[rel[..., c], c] for c in range(3))
        logits = (torch.einsum('ihd,jhd->hij', qg, kg) + torch.einsum('ihd,ijhd->hij', qg, tq)
                  + torch.einsum('jhd,ijhd->hij', kg, tk))
        attn = logits.masked_fill(~same[None], float('-inf')).softmax(-1)
        outs.append(torch.einsum('hij,jhd->ihd', attn, vg) + torch.einsum('hij,ijhd->ihd', attn, tv))
    return torch.cat(outs, 1)


__all__ = ['DisassembledWindowAttention', 'LocalStructureEnhancement',
           'disassembled_window_attention', 'window_attention', 'window_keys',
           'dense_reference_attention', 'plane_window']
