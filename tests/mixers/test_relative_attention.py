"""RelativeSelfAttention2d: the skewed relative logits are exact against the gathered
(per query-key pair) embeddings, tensor2tensor's ``python_relative_att`` oracle vectorised."""
import pytest
import torch

from plugins.mixers.relative_attention import RelativeSelfAttention2d
from plugins.ops import relative_attention as relative_ops
from plugins.ops.relative_attention import relative_to_absolute
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13)]


def gathered_embeddings(table, h, w, axis):
    """(heads, N, N, d): the table row of each pair's offset along ``axis``, zero beyond M - 1."""
    m = (table.shape[1] + 1) // 2
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = (ys if axis == 'h' else xs).flatten()
    offset = pos[None, :] - pos[:, None]                                # key - query
    rows = table[:, (offset + m - 1).clamp(0, 2 * m - 2)]               # heads N N d
    return rows * (offset.abs() < m)[None, :, :, None]


def gathered_reference(m, x):
    b, c, h, w = x.shape
    n = h * w
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, -1) \
        .permute(2, 0, 3, 1, 4)                                         # B heads N d
    shape = (m.num_heads, -1, m.head_dim)
    rel = gathered_embeddings(m.height_key_relative_embeddings.expand(shape), h, w, 'h') + \
        gathered_embeddings(m.width_key_relative_embeddings.expand(shape), h, w, 'w')
    logits = (q @ k.transpose(-1, -2) + torch.einsum('bhid,hijd->bhij', q, rel))
    out = (logits / m.head_dim ** 0.5).softmax(-1) @ v
    return m.proj(out.transpose(1, 2).reshape(b, n, c)).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(max_relative_position=4), dict(),
                                dict(max_relative_position=5, heads_share_relative_embedding=True)])
def test_skewing_matches_gathered_relative_embeddings(size, kw):
    m = randomize_(RelativeSelfAttention2d(16, 2, **kw), 0.3)
    compare_with_reference(m, gathered_reference, torch.randn(2, 16, *size))


def test_bias_built_in_query_chunks_gives_the_same_result(monkeypatch):
    m = randomize_(RelativeSelfAttention2d(16, 2, max_relative_position=4), 0.3)
    monkeypatch.setattr(relative_ops, '_CHUNK_BIAS', 2 * 2 * 63 * 10)    # 10 queries per chunk
    compare_with_reference(m, gathered_reference, torch.randn(2, 16, 7, 9))


def test_skew_moves_offsets_to_key_positions():
    x = torch.randn(3, 5, 9)                                            # L = 5, 2L - 1 = 9
    out = relative_to_absolute(x)
    i, j = torch.meshgrid(torch.arange(5), torch.arange(5), indexing='ij')
    torch.testing.assert_close(out, x[:, i, j - i + 4])


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='RelativeSelfAttention2d', dim=32, num_heads=2))
    assert m(torch.randn(1, 32, 5, 40)).shape == (1, 32, 5, 40)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='divisible'):
        RelativeSelfAttention2d(30, 4)
    with pytest.raises(ValueError, match='max_relative_position'):
        RelativeSelfAttention2d(32, 4, max_relative_position=0)
