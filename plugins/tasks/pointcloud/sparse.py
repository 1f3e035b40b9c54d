"""Sparse voxel operations in plain PyTorch: keys, neighbour maps, submanifold convolution,
grid pooling and k-NN unpooling.

Everything works on sorted 64-bit voxel keys and ``torch.searchsorted`` lookups, never on a dense
voxel grid, so memory grows with the number of occupied voxels (``N x 27`` neighbour indices for a
3x3x3 kernel). The submanifold convolution follows spconv's ``SubMConv3d`` exactly: outputs only on
occupied voxels, cross-correlation ``out[p] = sum_o W[o] in[p + o]``, weights in spconv 2.x's
``(out, kx, ky, kz, in / groups)`` layout so that official checkpoints load unchanged.
"""
import itertools
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def pack_keys(batch: torch.Tensor, grid: torch.Tensor, base: Optional[int] = None) -> torch.Tensor:
    """One int64 key per ``(batch, x, y, z)``; keys sort by batch, then x, y, z.

    ``grid`` may hold small negative values (neighbour offsets); ``base`` is the per-axis range
    (defaults to what ``grid`` needs, plus a margin of 2 for offsets of a 5x5x5 kernel).
    """
    if base is None:
        base = int(grid.max().item()) + 5 if grid.numel() else 5
    nb = int(batch.max().item()) + 1 if batch.numel() else 1
    if nb * base ** 3 >= 2 ** 62:
        raise ValueError(f'voxel grid of {base} cells per axis and {nb} clouds does not fit in '
                         f'64-bit keys: use a larger voxel size or smaller crops')
    g = grid.long() + 2
    return ((batch.long() * base + g[:, 0]) * base + g[:, 1]) * base + g[:, 2]


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """``(K, 3)`` offsets of a cubic kernel, x slowest; offset ``K - 1 - k`` is ``-offset k``."""
    r = kernel_size // 2
    return torch.tensor(list(itertools.product(range(-r, r + 1), repeat=3)), dtype=torch.long,
                        device=device)


def lookup(sorted_keys: torch.Tensor, order: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Index of each query key among the keys (``order[pos]``), or ``len(order)`` if absent."""
    n = sorted_keys.numel()
    if n == 0:
        return torch.full_like(query, 0)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=n - 1)
    found = sorted_keys[pos] == query
    return torch.where(found, order[pos], torch.full_like(pos, n))


def neighbor_map(grid: torch.Tensor, batch: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """``(N, K)`` index of the voxel at ``grid + offset_k`` of the same cloud, ``N`` if empty.

    Voxels must be unique per cloud (as spconv requires); ``grid`` is ``(N, 3)`` integer.
    """
    base = int(grid.max().item()) + 5 if grid.numel() else 5
    keys = pack_keys(batch, grid, base)
    sorted_keys, order = torch.sort(keys)
    offsets = kernel_offsets(kernel_size, grid.device)
    query = pack_keys(batch[:, None].expand(-1, len(offsets)).reshape(-1),
                      (grid[:, None, :] + offsets[None]).reshape(-1, 3), base)
    return lookup(sorted_keys, order, query).view(-1, len(offsets))


def _gather_conv(feat: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor,
                 depthwise: bool, chunk: int) -> torch.Tensor:
    """``sum_k f(feat[nbr[:, k]], weight[k])``, ``chunk`` rows at a time (one GEMM per chunk)."""
    n, num_k = nbr.shape
    padded = torch.cat([feat, feat.new_zeros(1, feat.shape[1])])
    out = feat.new_empty(n, weight.shape[-1])
    flat_weight = None if depthwise else weight.reshape(-1, weight.shape[-1])  # (K Cin, Cout)
    for start in range(0, n, chunk):
        rows = nbr[start:start + chunk]
        gathered = padded.index_select(0, rows.reshape(-1)).view(len(rows), num_k, -1)
        if depthwise:
            out[start:start + chunk] = torch.einsum('nkc,kc->nc', gathered, weight)
        else:
            out[start:start + chunk] = gathered.view(len(rows), -1) @ flat_weight
    return out


class _SubmanifoldConv(torch.autograd.Function):
    """``out[i] = sum_k f(in[nbr[i, k]], W[k])``, with ``f`` a matmul or a channel-wise product.

    The ``(N, K, C)`` gathered features live only within a chunk of rows (one GEMM each) and
    are gathered again in the backward pass, never stored. The neighbour relation is symmetric
    (``nbr[i, k] = j`` iff ``nbr[j, K - 1 - k] = i``), so the gradient of the input is the
    convolution of the output gradient with the mirrored, transposed kernel: gathers only.
    """

    @staticmethod
    def forward(ctx, feat, weight, nbr, depthwise: bool, chunk: int):
        # feat: (N, Cin); weight: (K, Cin, Cout) or (K, C) if depthwise; nbr: (N, K)
        ctx.save_for_backward(feat, weight, nbr)
        ctx.depthwise, ctx.chunk = depthwise, chunk
        return _gather_conv(feat, weight, nbr, depthwise, chunk)

    @staticmethod
    def backward(ctx, grad_out):
        feat, weight, nbr = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        depthwise, chunk = ctx.depthwise, ctx.chunk
        num_k = nbr.shape[1]
        grad_feat = grad_weight = None
        if ctx.needs_input_grad[0]:
            mirrored = weight.flip(0) if depthwise else weight.flip(0).transpose(1, 2)
            grad_feat = _gather_conv(grad_out, mirrored.contiguous(), nbr, depthwise, chunk)
        if ctx.needs_input_grad[1]:
            padded = torch.cat([feat, feat.new_zeros(1, feat.shape[1])])
            grad_weight = torch.zeros_like(weight)
            for start in range(0, len(nbr), chunk):
                rows = nbr[start:start + chunk]
                gathered = padded.index_select(0, rows.reshape(-1)).view(len(rows), num_k, -1)
                g = grad_out[start:start + chunk]
                if depthwise:
                    grad_weight += torch.einsum('nkc,nc->kc', gathered, g)
                else:
                    grad_weight += (gathered.view(len(rows), -1).t() @ g).view_as(weight)
        return grad_feat, grad_weight, None, None, None


def submanifold_conv3d(feat: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor,
                       depthwise: bool = False, max_elements: int = 1 << 24) -> torch.Tensor:
    """Submanifold sparse convolution of ``feat (N, Cin)`` on a neighbour map ``nbr (N, K)``.

    ``weight``: ``(K, Cin, Cout)``, or ``(K, C)`` for a depth-wise convolution;
    ``max_elements`` bounds the gathered ``rows x K x C`` block of one step (memory knob).
    """
    if feat.dtype != weight.dtype:  # autocast: compute in the weight's dtype
        feat = feat.to(weight.dtype)
    chunk = max(1, max_elements // (nbr.shape[1] * max(feat.shape[1], 1)))
    return _SubmanifoldConv.apply(feat, weight, nbr, depthwise, chunk)


class SubMConv3d(nn.Module):
    """spconv's ``SubMConv3d`` on a :class:`SparseVoxels` level, in plain PyTorch.

    Args:
        groups: 1 (full convolution) or ``in_channels`` (depth-wise, ``out == in``), the two cases
            the patched spconv of ConDaFormer supports.

    The weight has spconv 2.x's ``(out, kx, ky, kz, in / groups)`` layout. As in spconv, a 1x1x1
    kernel is a matrix product with the weight's memory read as an ``(in, out)`` matrix
    (``weight.view(in, out)``), which is what the official checkpoints were trained with.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 groups: int = 1, bias: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        if groups not in (1, in_channels) or (groups > 1 and out_channels != in_channels):
            raise ValueError(f'groups must be 1 or in_channels (with out_channels == '
                             f'in_channels), got groups={groups}, in={in_channels}, '
                             f'out={out_channels}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.groups = kernel_size, groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, kernel_size, kernel_size, kernel_size, in_channels // groups))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan = self.out_channels * self.kernel_size ** 3 if self.groups > 1 else \
            self.in_channels * self.kernel_size ** 3
        bound = fan ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, feat: torch.Tensor, voxels: 'SparseVoxels') -> torch.Tensor:
        if self.kernel_size == 1:
            out = feat @ self.weight.view(self.in_channels, self.out_channels).to(feat.dtype)
        else:
            nbr = voxels.neighbors(self.kernel_size)
            k = self.kernel_size ** 3
            if self.groups > 1:
                weight = self.weight.view(self.out_channels, k).t()  # (K, C)
            else:
                weight = self.weight.view(self.out_channels, k, self.in_channels).permute(1, 2, 0)
            out = submanifold_conv3d(feat, weight, nbr, depthwise=self.groups > 1)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}'
                + (f', groups={self.groups}' if self.groups > 1 else ''))


class SparseVoxels:
    """One level of the sparse U-Net: unique voxels per cloud, their points and neighbour maps.

    Attributes:
        grid: ``(N, 3)`` integer voxel coordinates (unique per cloud).
        xyz: ``(N, 3)`` float point positions in units of the finest voxel.
        batch: ``(N,)`` cloud index of each voxel.
        counts: ``(N, 1)`` number of finest-level points each voxel stands for.
        stride: voxel edge in units of the finest voxel.
    """

    def __init__(self, grid, xyz, batch, counts=None, stride: int = 1) -> None:
        self.grid, self.xyz, self.batch, self.stride = grid.long(), xyz, batch.long(), stride
        self.counts = counts if counts is not None else xyz.new_ones(len(xyz), 1)
        self._neighbors = {}

    def __len__(self) -> int:
        return self.grid.shape[0]

    def neighbors(self, kernel_size: int = 3) -> torch.Tensor:
        """``(N, K)`` neighbour map, computed once per level (spconv's ``indice_key``)."""
        if kernel_size not in self._neighbors:
            self._neighbors[kernel_size] = neighbor_map(self.grid, self.batch, kernel_size)
        return self._neighbors[kernel_size]


def grid_pool(feat: torch.Tensor, voxels: SparseVoxels,
              stride: int) -> Tuple[torch.Tensor, SparseVoxels, torch.Tensor]:
    """Max-pool features into voxels of edge ``stride`` (finest units); count-weighted mean xyz.

    Returns the pooled features, the coarse level, and ``cluster``: for each fine voxel, the index
    of its coarse voxel (``coarse[cluster]`` broadcasts back).
    """
    grid = torch.div(voxels.xyz, stride, rounding_mode='floor').long()
    keys = pack_keys(voxels.batch, grid)
    _, cluster = torch.unique(keys, sorted=True, return_inverse=True)
    m = int(cluster.max().item()) + 1 if len(cluster) else 0
    counts = voxels.counts.new_zeros(m, 1).index_add_(0, cluster, voxels.counts)
    xyz = voxels.xyz.new_zeros(m, 3).index_add_(0, cluster, voxels.xyz * voxels.counts)
    xyz = xyz / counts.clamp(min=1)
    batch = voxels.batch.new_zeros(m).scatter_(0, cluster, voxels.batch)
    pooled = feat.new_zeros(m, feat.shape[1]).scatter_reduce(
        0, cluster[:, None].expand_as(feat), feat, reduce='amax', include_self=False)
    coarse_grid = voxels.grid.new_zeros(m, 3).scatter_(0, cluster[:, None].expand(-1, 3), grid)
    coarse = SparseVoxels(coarse_grid, xyz, batch, counts, stride)
    return pooled, coarse, cluster


def _block_search(fine_xyz, fine_batch, cells, origin, coarse_xyz, sorted_keys, order, base,
                  stride, radius, k):
    """k nearest among the coarse points in the ``(2r+1)^3`` block of cells around each fine
    point's cell, and whether that answer is certain: no coarse point outside the block (each
    lies inside its own cell) can be nearer than the block's boundary."""
    offsets = kernel_offsets(2 * radius + 1, fine_xyz.device)
    num = len(offsets)
    query = pack_keys(fine_batch[:, None].expand(-1, num).reshape(-1),
                      (cells[:, None, :] - origin + offsets[None]).reshape(-1, 3), base)
    cand = lookup(sorted_keys, order, query).view(-1, num)       # len(coarse) where empty
    xyz_pad = torch.cat([coarse_xyz, coarse_xyz.new_full((1, 3), float('inf'))])
    dist = (xyz_pad.index_select(0, cand.reshape(-1)).view(-1, num, 3)
            - fine_xyz[:, None, :]).norm(dim=-1)
    dist = torch.nan_to_num(dist, nan=float('inf'))
    dist, pick = torch.topk(dist, k, dim=1, largest=False)
    low = fine_xyz - (cells - radius).to(fine_xyz.dtype) * stride
    high = (cells + radius + 1).to(fine_xyz.dtype) * stride - fine_xyz
    bound = torch.minimum(low, high).amin(1)
    return cand.gather(1, pick), dist, dist[:, -1] <= bound


def _exhaustive_search(fine_xyz, fine_batch, coarse_xyz, coarse_batch, k, max_elements):
    """k nearest coarse points of the same cloud by comparing with all of them, in chunks."""
    n_coarse = len(coarse_xyz)
    idx = torch.full((len(fine_xyz), k), n_coarse, dtype=torch.long, device=fine_xyz.device)
    dist = fine_xyz.new_full((len(fine_xyz), k), float('inf'))
    for b in torch.unique(fine_batch).tolist():
        rows = torch.nonzero(fine_batch == b).flatten()
        members = torch.nonzero(coarse_batch == b).flatten()
        kk = min(k, len(members))
        if kk == 0:
            continue
        chunk = max(1, max_elements // max(len(members), 1))
        for start in range(0, len(rows), chunk):
            r = rows[start:start + chunk]
            d = torch.cdist(fine_xyz[r], coarse_xyz[members],
                            compute_mode='donot_use_mm_for_euclid_dist')
            d, pick = torch.topk(d, kk, dim=1, largest=False)
            dist[r, :kk], idx[r, :kk] = d, members[pick]
    return idx, dist


def nearest_coarse_points(coarse: SparseVoxels, fine: SparseVoxels, k: int = 3,
                          max_elements: int = 1 << 22) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact ``k`` nearest coarse points of each fine point within its cloud (pointops' kNN).

    Returns ``(idx, dist)``, each ``(N_fine, k)`` in increasing distance; ``idx == len(coarse)``
    and ``dist == inf`` where a cloud has fewer than ``k`` coarse points.

    Each coarse point lies in its cell of edge ``coarse.stride`` (a count-weighted mean of the
    fine points of that cell), so a search of the ``3^3`` (then ``5^3``) block of cells around a
    fine point is exact as soon as the ``k``-th distance found is within the block's boundary.
    Points not settled by the blocks (sparse regions, cloud borders) compare with every coarse
    point of their cloud, ``max_elements`` distances at a time, so the result is exact everywhere
    and memory stays bounded.
    """
    stride = float(coarse.stride)
    fine_xyz = fine.xyz.to(coarse.xyz.dtype)
    idx = torch.full((len(fine), k), len(coarse), dtype=torch.long, device=fine_xyz.device)
    dist = fine_xyz.new_full((len(fine), k), float('inf'))
    pending = torch.arange(len(fine), device=fine_xyz.device)
    if len(coarse) and len(fine) and k <= 27:
        coarse_cells = torch.div(coarse.xyz, stride, rounding_mode='floor').long()
        cells = torch.div(fine_xyz, stride, rounding_mode='floor').long()
        origin = torch.minimum(coarse_cells.min(0).values, cells.min(0).values)
        base = int(max(coarse_cells.max().item(), cells.max().item()) - origin.min().item()) + 5
        sorted_keys, order = torch.sort(pack_keys(coarse.batch, coarse_cells - origin, base))
        if bool((sorted_keys[1:] != sorted_keys[:-1]).all()):  # one coarse point per cell
            for radius in (1, 2):
                chunk = max(1, max_elements // (2 * radius + 1) ** 3)
                unsettled = []
                for start in range(0, len(pending), chunk):
                    rows = pending[start:start + chunk]
                    found, d, settled = _block_search(
                        fine_xyz[rows], fine.batch[rows], cells[rows], origin, coarse.xyz,
                        sorted_keys, order, base, stride, radius, k)
                    idx[rows[settled]], dist[rows[settled]] = found[settled], d[settled]
                    unsettled.append(rows[~settled])
                pending = torch.cat(unsettled)
    if len(pending):
        idx[pending], dist[pending] = _exhaustive_search(
            fine_xyz[pending], fine.batch[pending], coarse.xyz, coarse.batch, k, max_elements)
    return idx, dist


def knn_interpolate(feat: torch.Tensor, coarse: SparseVoxels, fine: SparseVoxels,
                    k: int = 3) -> torch.Tensor:
    """Inverse-distance weighted mean of the ``k`` nearest coarse points of each fine point.

    As the official decoder (pointops ``interpolation``): the exact ``k = 3`` nearest coarse
    points of the same cloud (:func:`nearest_coarse_points`), weights ``1 / (distance + 1e-8)``
    normalised to sum 1.
    """
    idx, dist = nearest_coarse_points(coarse, fine, k)
    weight = torch.where(torch.isfinite(dist), 1.0 / (dist + 1e-8), torch.zeros_like(dist))
    weight = weight / weight.sum(1, keepdim=True)
    feat_pad = torch.cat([feat, feat.new_zeros(1, feat.shape[1])])
    gathered = feat_pad.index_select(0, idx.reshape(-1)).view(len(idx), k, -1)
    return (gathered * weight[..., None].to(feat.dtype)).sum(1)


class PointBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` over points that also trains on a level with a single point.

    PyTorch refuses batch statistics of one value; such a level (a tiny cloud at the coarsest
    stage) is normalised with the running statistics instead. Parameter names are BatchNorm1d's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] <= 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)
