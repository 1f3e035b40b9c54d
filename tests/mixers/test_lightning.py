"""LightningAttention (non-causal Lightning Attention-2 in TransNormerLLM's layer) against the
dense decayed linear attention [(Q K^T) (.) M] V with M_ij = lambda^|i-j| (the official torch
reference ``linear_attn`` with the symmetric mask), and the block-wise op against it, causal too."""
import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.lightning import LightningAttention, alibi_slopes
from plugins.ops.lightning_attention import lightning_attention
from plugins.registry import MODELS

from .mixer_checks import compare_bf16, compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (1, 1), (3, 30)]


def _decay_mask(n, decay, causal=False):
    i = torch.arange(n, dtype=torch.float64)
    dist = i[:, None] - i[None]
    mask = decay.double()[:, None, None] ** dist.abs()
    return mask * (dist >= 0) if causal else mask


def lightning_reference(m, x):
    b, c, h, w = x.shape
    n = h * w
    t = x.flatten(2).transpose(1, 2)
    q, k, v = F.silu(m.qkv(t)).view(b, n, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
    decay = torch.exp(-alibi_slopes(m.num_heads) * m.decay_scale)
    out = ((q @ k.transpose(-1, -2)) * _decay_mask(n, decay).to(x.dtype)) @ v
    out = m.norm(out.transpose(1, 2).reshape(b, n, c))
    out = m.o_proj(out * torch.sigmoid(m.output_gate(t)))
    return out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(block_size=8), dict(block_size=64, decay_scale=0.3),
                                dict(block_size=5, decay_scale=0.0)])
def test_matches_dense_decayed_linear_attention(size, kw):
    m = randomize_(LightningAttention(16, 4, **kw))
    compare_with_reference(m, lightning_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    m = randomize_(LightningAttention(16, 4, block_size=8))
    compare_parameter_grads(m, lightning_reference, torch.randn(2, 16, 7, 9))


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('n,block', [(50, 8), (64, 64), (7, 3)])
def test_block_op_matches_dense_mask(causal, n, block):
    q, k, v = (torch.randn(2, 3, n, 4, dtype=torch.float64) for _ in range(3))
    decay = torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64)
    out = lightning_attention(q, k, v, decay, block, causal=causal)
    ref = ((q @ k.transpose(-1, -2)) * _decay_mask(n, decay, causal)) @ v
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_alibi_slopes_are_the_official_ones():
    torch.testing.assert_close(alibi_slopes(8), 2.0 ** -torch.arange(1, 9, dtype=torch.float32))
    six = alibi_slopes(6)  # not a power of two: 4 slopes of 4 heads, then every other of 8
    torch.testing.assert_close(six, torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8,
                                                  2 ** -1, 2 ** -3]))


def test_eval_is_deterministic():
    m = randomize_(LightningAttention(16, 4)).eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(block_size=0), 'block_size'),
                                      (dict(decay_scale=-1.0), 'decay_scale')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=4)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        LightningAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='LightningAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


def test_bfloat16_close_to_float32():
    compare_bf16(randomize_(LightningAttention(32, 4), 0.1), torch.randn(2, 32, 13, 21))
