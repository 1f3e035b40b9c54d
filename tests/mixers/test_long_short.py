"""LongShortAttention (LS-attention) against dense softmax attention with a per-head mask: a
truncated (2r+1) x (2r+1) band for the local heads, every token for the global heads; and the
banded op against its own dense form."""
import pytest
import torch

from plugins.mixers.long_short import LongShortAttention
from plugins.ops.band_attention import band_attention_2d
from plugins.ops.global_attention import dense_attention
from plugins.registry import MODELS

from .mixer_checks import compare_bf16, compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (1, 1), (2, 12)]


def _band(h, w, rh, rw):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    return ((ys[:, None] - ys[None]).abs() <= rh) & ((xs[:, None] - xs[None]).abs() <= rw)


def ls_reference(m, x):
    b, c, h, w = x.shape
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, m.num_heads, -1).permute(
        2, 0, 3, 1, 4)
    local = _band(h, w, m.local_radius, m.local_radius)
    is_local = torch.arange(m.num_heads) < m.num_local_heads
    mask = local[None] | ~is_local[:, None, None]                             # heads N N
    out = m.proj(dense_attention(q, k, v, mask=mask).transpose(1, 2).reshape(b, h * w, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(), dict(num_global_heads=2, local_radius=1),
                                dict(num_global_heads=0, local_radius=2)])
def test_matches_dense_per_head_mask_reference(size, kw):
    m = randomize_(LongShortAttention(16, 4, **kw))
    compare_with_reference(m, ls_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    m = randomize_(LongShortAttention(16, 4, num_global_heads=1, local_radius=1))
    compare_parameter_grads(m, ls_reference, torch.randn(2, 16, 7, 9))


@pytest.mark.parametrize('radius,tile', [((1, 3), 4), (0, 8), (4, 3)])
def test_band_op_matches_dense_band_for_any_tile(radius, tile):
    q, k, v = (torch.randn(2, 2, 11, 13, 4, dtype=torch.float64) for _ in range(3))
    out = band_attention_2d(q, k, v, radius, tile=tile)
    rh, rw = (radius, radius) if isinstance(radius, int) else radius
    ref = dense_attention(*(t.reshape(2, 2, 143, 4) for t in (q, k, v)), mask=_band(11, 13, rh, rw))
    torch.testing.assert_close(out.reshape(2, 2, 143, 4), ref, rtol=1e-12, atol=1e-12)


def test_default_has_a_quarter_global_heads_and_at_least_one():
    assert LongShortAttention(64, 8).num_global_heads == 2
    assert LongShortAttention(64, 2).num_global_heads == 1
    assert LongShortAttention(64, 1).num_local_heads == 0


def test_eval_is_deterministic():
    m = randomize_(LongShortAttention(16, 4)).eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(num_global_heads=5), 'num_global_heads'),
                                      (dict(local_radius=-1), 'local_radius')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=4)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        LongShortAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='LongShortAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


def test_bfloat16_close_to_float32():
    compare_bf16(randomize_(LongShortAttention(32, 4), 0.1), torch.randn(2, 32, 13, 21))
