"""Sparse ops and disassembled attention against dense references; pooling, edge cases."""
import pytest
import torch
import torch.nn.functional as F

from plugins.tasks.pointcloud.attention import (dense_reference_attention,
                                                disassembled_window_attention)
from plugins.tasks.pointcloud.sparse import (SparseVoxels, SubMConv3d, grid_pool,
                                             knn_interpolate, nearest_coarse_points,
                                             submanifold_conv3d)


def small_cloud(n=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([12., 9., 7.],
                                                                              dtype=torch.float64)
    batch = (torch.arange(n) >= n * 2 // 3).long()
    return xyz, batch


def qkv_tables(n, heads=6, dim=4, grid_len=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    qkv = [torch.randn(n, heads, dim, generator=g, dtype=torch.float64).requires_grad_()
           for _ in range(3)]
    tables = [(0.3 * torch.randn(2 * grid_len - 1, 3, heads // 3, dim, generator=g,
                                 dtype=torch.float64)).requires_grad_() for _ in range(3)]
    return qkv, tables


@pytest.mark.parametrize('shift', [False, True])
def test_disassembled_attention_matches_dense_plane_window_reference(shift):
    xyz, batch = small_cloud()
    (q, k, v), tables = qkv_tables(len(xyz))
    out = disassembled_window_attention(q, k, v, xyz, batch, 4.0, 0.5, shift, *tables,
                                        max_elements=500)  # several chunks per bucket
    ref = dense_reference_attention(q, k, v, xyz, batch, 4.0, 0.5, shift, *tables)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [q, k, v, *tables], grad)
    want = torch.autograd.grad(ref, [q, k, v, *tables], grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_attention_is_permutation_equivariant_and_handles_one_point_and_duplicates():
    xyz, batch = small_cloud(60)
    xyz = torch.cat([xyz, xyz[:5]])  # duplicate points
    batch = torch.cat([batch, batch[:5]])
    (q, k, v), tables = qkv_tables(len(xyz))
    out = disassembled_window_attention(q, k, v, xyz, batch, 4.0, 0.5, True, *tables)
    perm = torch.randperm(len(xyz))
    out_p = disassembled_window_attention(q[perm], k[perm], v[perm], xyz[perm], batch[perm],
                                          4.0, 0.5, True, *tables)
    torch.testing.assert_close(out_p, out[perm])
    one = disassembled_window_attention(q[:1], k[:1], v[:1], xyz[:1], batch[:1], 4.0, 0.5,
                                        False, *tables)
    torch.testing.assert_close(one, dense_reference_attention(
        q[:1], k[:1], v[:1], xyz[:1], batch[:1], 4.0, 0.5, False, *tables))


def grid_and_dense(seed=0, size=6, channels=5):
    g = torch.Generator().manual_seed(seed)
    grid = torch.unique(torch.randint(0, size, (250, 3), generator=g), dim=0)
    feat = torch.randn(len(grid), channels, generator=g, dtype=torch.float64)
    dense = torch.zeros(1, channels, size, size, size, dtype=torch.float64)
    dense[0, :, grid[:, 0], grid[:, 1], grid[:, 2]] = feat.t()
    voxels = SparseVoxels(grid, grid.double(), torch.zeros(len(grid), dtype=torch.long))
    return grid, feat, dense, voxels


@pytest.mark.parametrize('groups', [1, 5])
def test_submanifold_conv_matches_dense_conv3d_on_occupied_voxels(groups):
    grid, feat, dense, voxels = grid_and_dense()
    conv = SubMConv3d(5, 5 if groups > 1 else 7, 3, groups=groups).double()
    out = conv(feat, voxels)
    ref = F.conv3d(dense, conv.weight.permute(0, 4, 1, 2, 3), padding=1, groups=groups)
    torch.testing.assert_close(out, ref[0][:, grid[:, 0], grid[:, 1], grid[:, 2]].t())


@pytest.mark.parametrize('depthwise', [False, True])
def test_submanifold_conv_gradients(depthwise):
    grid, feat, _, voxels = grid_and_dense(size=4, channels=3)
    feat = feat[:40].requires_grad_()
    voxels = SparseVoxels(grid[:40], grid[:40].double(), torch.zeros(40, dtype=torch.long))
    weight = torch.randn((27, 3) if depthwise else (27, 3, 2), dtype=torch.float64,
                         requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f, w: submanifold_conv3d(f, w, voxels.neighbors(3), depthwise, max_elements=300),
        (feat, weight))


def test_grid_pool_then_unpool_is_inverse_on_occupied_voxels():
    grid, _, _, _ = grid_and_dense(size=8)
    xyz = grid.double() + 0.5
    fine = SparseVoxels(grid, xyz, torch.zeros(len(grid), dtype=torch.long))
    feat = torch.randn(len(grid), 4, dtype=torch.float64)
    pooled, coarse, cluster = grid_pool(feat, fine, 2)
    # max over each coarse voxel; the coarse voxel of every fine voxel is its floor(xyz / 2)
    assert torch.equal(coarse.grid[cluster], torch.div(grid, 2, rounding_mode='floor'))
    for c in range(len(coarse)):
        torch.testing.assert_close(pooled[c], feat[cluster == c].max(0).values)
    # counts-weighted mean positions; unpooling a field constant per coarse voxel onto coarse
    # positions gives it back exactly
    torch.testing.assert_close(coarse.xyz[cluster[0]], xyz[cluster == cluster[0]].mean(0))
    same = SparseVoxels(coarse.grid, coarse.xyz, coarse.batch, stride=1)
    back = knn_interpolate(pooled, coarse, same)
    torch.testing.assert_close(back, pooled)
    const = knn_interpolate(torch.ones(len(coarse), 3, dtype=torch.float64), coarse, fine)
    torch.testing.assert_close(const, torch.ones(len(grid), 3, dtype=torch.float64))


def sparse_two_clouds(seed=0):
    """A dense slab and scattered points (cloud 0), a cloud of two points (cloud 1)."""
    g = torch.Generator().manual_seed(seed)
    slab = torch.rand(300, 3, generator=g, dtype=torch.float64) * torch.tensor(
        [40., 40., 1.], dtype=torch.float64)
    scattered = torch.rand(40, 3, generator=g, dtype=torch.float64) * 60
    pair = torch.tensor([[3.2, 5.1, 7.7], [30.5, 2.2, 9.9]], dtype=torch.float64)
    xyz = torch.cat([slab, scattered, pair])
    batch = torch.cat([torch.zeros(340, dtype=torch.long), torch.ones(2, dtype=torch.long)])
    grid = torch.floor(xyz).long()
    keep = torch.unique(torch.cat([batch[:, None], grid], 1), dim=0, return_inverse=True)[1]
    first = torch.full((int(keep.max()) + 1,), len(xyz)).scatter_reduce(
        0, keep, torch.arange(len(xyz)), 'amin')
    return SparseVoxels(grid[first], xyz[first], batch[first])


def test_three_nearest_coarse_points_are_exact_where_they_lie_outside_the_3x3x3_block():
    fine = sparse_two_clouds()
    feat = torch.randn(len(fine), 5, dtype=torch.float64)
    pooled, coarse, _ = grid_pool(feat, fine, 4)
    idx, dist = nearest_coarse_points(coarse, fine)
    # brute force over the coarse points of the same cloud
    d = torch.cdist(fine.xyz, coarse.xyz, compute_mode='donot_use_mm_for_euclid_dist')
    d[fine.batch[:, None] != coarse.batch[None]] = float('inf')
    want_dist, want_idx = torch.topk(d, 3, dim=1, largest=False)
    torch.testing.assert_close(dist, want_dist)
    assert torch.equal(idx[torch.isfinite(want_dist)], want_idx[torch.isfinite(want_dist)])
    # the case this guards: true neighbours outside the 3x3x3 block of coarse cells
    cell = torch.div(fine.xyz, 4, rounding_mode='floor').long()
    coarse_cell = torch.div(coarse.xyz, 4, rounding_mode='floor').long()
    outside = ((coarse_cell[want_idx] - cell[:, None]).abs().amax(-1) > 1) & torch.isfinite(
        want_dist)
    assert outside.any(1).float().mean() > 0.1
    # the two-point cloud: two neighbours, the third is absent (weight 0)
    pair = fine.batch == 1
    assert torch.isinf(dist[pair, 2]).all() and torch.isfinite(dist[pair, :2]).all()
    # interpolation: inverse-distance weights of the exact neighbours
    weight = 1 / (want_dist + 1e-8)
    weight = torch.where(torch.isfinite(want_dist), weight, torch.zeros_like(weight))
    weight = weight / weight.sum(1, keepdim=True)
    padded = torch.cat([pooled, pooled.new_zeros(1, 5)])
    want = (padded[torch.where(torch.isfinite(want_dist), want_idx, len(coarse))]
            * weight[..., None]).sum(1)
    torch.testing.assert_close(knn_interpolate(pooled, coarse, fine), want)


def test_nearest_coarse_points_in_small_chunks_equal_one_pass():
    fine = sparse_two_clouds(1)
    _, coarse, _ = grid_pool(torch.zeros(len(fine), 1, dtype=torch.float64), fine, 2)
    one = nearest_coarse_points(coarse, fine)
    chunked = nearest_coarse_points(coarse, fine, max_elements=200)
    assert torch.equal(one[0], chunked[0]) and torch.equal(one[1], chunked[1])
