"""BlockGlobalLocalAttention (Block Transformer) against one explicit softmax over the tokens and
the blocks' prefixes with a block-diagonal mask, after an explicit global stage."""
import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.block_attention import BlockGlobalLocalAttention
from plugins.ops.global_attention import dense_attention
from plugins.registry import MODELS

from .mixer_checks import compare_bf16, compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (1, 1), (4, 6)]


def block_reference(m, x):
    """Tokens of the zero-padded map in raster order; block of each token; block embeddings from
    each block's tokens; dense global attention over blocks; then one dense softmax of every
    token over [all tokens; all prefixes] masked to its own block's real tokens and prefixes."""
    b, c, h, w = x.shape
    ph, pw = m.block_size
    hp, wp = h + (-h) % ph, w + (-w) % pw
    xp = F.pad(x, (0, wp - w, 0, hp - h))
    ys, xs = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    block = (ys // ph) * (wp // pw) + xs // pw                                # N'
    real = (ys < h) & (xs < w)
    nb, nh, hd = (hp // ph) * (wp // pw), m.num_heads, m.head_dim
    tokens = xp.flatten(2).transpose(1, 2)                                    # B N' C
    # block embedding: concatenation in raster order inside the block, or the mean of real tokens
    slot = (ys % ph) * pw + xs % pw
    per_block = torch.zeros(b, nb, ph * pw, c, dtype=x.dtype)
    per_block[:, block, slot] = tokens
    if m.block_embed == 'concat':
        e = m.embed(per_block.reshape(b, nb, -1))
    else:
        counts = torch.zeros(nb, dtype=x.dtype).index_add(0, block, real.to(x.dtype))
        e = per_block.sum(2) / counts[:, None]
    gq, gk, gv = m.global_qkv(e).view(b, nb, 3, nh, hd).permute(2, 0, 3, 1, 4)
    g = dense_attention(gq, gk, gv).transpose(1, 2).reshape(b, nb, c)
    prefix = m.expand(e + m.global_proj(g)).reshape(b, nb * m.num_prefix, c)
    prefix_block = torch.arange(nb).repeat_interleave(m.num_prefix)
    q, k, v = m.qkv(tokens).view(b, -1, 3, nh, hd).permute(2, 0, 3, 1, 4)
    _, kp, vp = m.qkv(prefix).view(b, -1, 3, nh, hd).permute(2, 0, 3, 1, 4)
    mask = torch.cat([(block[:, None] == block[None]) & real[None],
                      block[:, None] == prefix_block[None]], dim=1)
    out = dense_attention(q, torch.cat([k, kp], 2), torch.cat([v, vp], 2), mask=mask)
    out = m.proj(out.transpose(1, 2).reshape(b, hp, wp, c))[:, :h, :w]
    return out.permute(0, 3, 1, 2)


def _mixer(**kw):
    return randomize_(BlockGlobalLocalAttention(16, 2, **kw))


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(block_size=2), dict(block_size=3, num_prefix=3),
                                dict(block_size=(2, 4), block_embed='mean', num_prefix=1)])
def test_matches_dense_block_diagonal_reference(size, kw):
    compare_with_reference(_mixer(**kw), block_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    compare_parameter_grads(_mixer(block_size=3), block_reference, torch.randn(2, 16, 7, 9))


def test_eval_is_deterministic():
    m = _mixer().eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(block_embed='max'), 'block_embed'),
                                      (dict(num_prefix=0), 'num_prefix'),
                                      (dict(block_size=0), 'block_size')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        BlockGlobalLocalAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='BlockGlobalLocalAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


def test_bfloat16_close_to_float32():
    compare_bf16(randomize_(BlockGlobalLocalAttention(32, 4), 0.1), torch.randn(2, 32, 13, 21))
