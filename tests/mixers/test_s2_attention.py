"""S2Attention2d: exact against a dense mask written from the tile coordinates; the heads' shards
cover every key."""
import pytest
import torch

from plugins.mixers.s2_attention import S2Attention2d, default_vert_stride
from plugins.ops.global_attention import dense_attention
from plugins.ops import strided_sparse
from plugins.ops.strided_sparse import s2_attention_2d, s2_uses_dense
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13)]


def s2_mask(m, h, w):
    """(heads, N, N): local tiles (tile distance < L on both axes) or the head's strided shard."""
    th, tw = m.tile_size
    va, vb = m.vert_stride
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    a, b = (ys // th).flatten(), (xs // tw).flatten()
    local = ((a[:, None] - a[None]).abs() < m.local_tiles) & \
        ((b[:, None] - b[None]).abs() < m.local_tiles)
    masks = []
    for head in range(m.num_heads):
        oa, ob = divmod(head % (va * vb), vb)
        strided = ((a + oa) % va == 0) & ((b + ob) % vb == 0)
        masks.append(local | strided[None, :])
    return torch.stack(masks)


def s2_reference(m, x):
    b, c, h, w = x.shape
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, m.num_heads, -1) \
        .permute(2, 0, 3, 1, 4)
    out = dense_attention(q, k, v, mask=s2_mask(m, h, w))
    return m.proj(out.transpose(1, 2).reshape(b, h * w, c)).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(num_heads=4, tile_size=2, local_tiles=1),
                                dict(num_heads=4, tile_size=(3, 2), local_tiles=2,
                                     vert_stride=(2, 2)),
                                dict(num_heads=2, tile_size=3, local_tiles=1,
                                     vert_stride=(2, 1))])
def test_matches_dense_masked_attention(size, kw):
    m = randomize_(S2Attention2d(16, **kw))
    compare_with_reference(m, s2_reference, torch.randn(2, 16, *size))


@pytest.mark.parametrize('path,fraction', [('sparse', float('inf')), ('dense', 0.0)])
@pytest.mark.parametrize('kw', [dict(num_heads=4, tile_size=2, local_tiles=1),
                                dict(num_heads=4, tile_size=(3, 2), local_tiles=2,
                                     vert_stride=(2, 2))])
def test_both_paths_match_dense_masked_attention(monkeypatch, path, fraction, kw):
    """The sparse path and the small-map dense-mask path compute the same function (forced here
    by the dispatch threshold), gradients included."""
    monkeypatch.setattr(strided_sparse, 'DENSE_KEY_FRACTION', fraction)
    assert s2_uses_dense(11, 13, (2, 2), 1, (2, 2)) == (path == 'dense')
    m = randomize_(S2Attention2d(16, **kw))
    compare_with_reference(m, s2_reference, torch.randn(2, 16, 11, 13))


def test_dense_path_on_small_maps_only():
    """Tile 8, L = 2: at 28x28 the sparse key set is more than the map (dense), at 56x56 with 8
    heads about a third of it (sparse)."""
    assert s2_uses_dense(28, 28, (8, 8), 2, (1, 2)) and s2_uses_dense(28, 28, (8, 8), 2, (2, 4))
    assert not s2_uses_dense(56, 56, (8, 8), 2, (1, 2))
    assert not s2_uses_dense(56, 56, (8, 8), 2, (2, 4))
    assert not s2_uses_dense(100, 152, (8, 8), 2, (1, 2))


@pytest.mark.parametrize('heads,stride', [(4, (2, 2)), (6, (2, 3)), (3, (3, 1))])
def test_heads_together_cover_every_key(heads, stride):
    """The attention weights of each head, read off with one-hot values: every head sees a strict
    subset of the keys, and their union is the whole map."""
    h, w, n = 11, 13, 11 * 13
    q, k = torch.randn(2, 1, heads, h, w, 4).double().unbind(0)
    eye = torch.eye(n, dtype=torch.double).view(1, 1, h, w, n).expand(1, heads, h, w, n)
    weights = s2_attention_2d(q, k, eye, (2, 2), 1, stride).reshape(heads, n, n)
    seen = weights > 0
    assert not seen.all(dim=(1, 2)).any()
    assert seen.any(0).all()


def test_default_stride_lets_the_heads_cover_the_map():
    assert [default_vert_stride(h) for h in (1, 2, 4, 8, 10, 16, 32)] == \
        [(1, 1), (1, 2), (2, 2), (2, 4), (3, 3), (4, 4), (4, 4)]
    assert S2Attention2d(64, 1).vert_stride == (1, 1)  # one head must see all: global attention


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='S2Attention2d', dim=64, num_heads=2))
    assert m(torch.randn(1, 64, 25, 33)).shape == (1, 64, 25, 33)


def test_rejects_too_few_heads_for_the_shards():
    with pytest.raises(ValueError, match='cannot cover 4 shards'):
        S2Attention2d(16, 2, vert_stride=2)
    with pytest.raises(ValueError, match='local_tiles'):
        S2Attention2d(16, 2, local_tiles=0)
