"""SelectiveSelfAttention: query and value temperatures, exact against an explicit softmax."""
import math

import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.selective_attention import SelectiveSelfAttention
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13)]


def ssa_reference(m, x):
    """softmax(tau_q(x_i) q_i . k_j / sqrt(d)) (tau_v(x_j) v_j), every factor written out."""
    b, c, h, w = x.shape
    n = h * w
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, -1).unbind(2)

    def tau(z, beta, u):  # z: B N heads d
        pos = 1 + torch.exp(-torch.exp(beta)) * math.log(n)
        return pos + torch.tanh(torch.einsum('bnhd,hd->bnh', F.gelu(z), u))

    logits = torch.einsum('bihd,bjhd->bhij', q, k) / math.sqrt(m.head_dim)
    logits = logits * tau(q, m.beta_q, m.u_q).permute(0, 2, 1)[..., None]
    if m.u_v is not None:
        v = v * tau(v, m.beta_v, m.u_v)[..., None]
    out = torch.einsum('bhij,bjhd->bihd', logits.softmax(-1), v).reshape(b, n, c)
    return m.proj(out).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('value_temperature', [True, False])
def test_matches_explicit_softmax_with_temperatures(size, value_temperature):
    m = randomize_(SelectiveSelfAttention(16, 2, value_temperature=value_temperature), 0.3)
    compare_with_reference(m, ssa_reference, torch.randn(2, 16, *size))


def test_position_temperature_grows_with_the_number_of_keys():
    m = SelectiveSelfAttention(16, 2)
    q = torch.randn(1, 2, 5, 8)
    small = m.temperature(q, m.beta_q, m.u_q, 49)
    large = m.temperature(q, m.beta_q, m.u_q, 49 * 16)
    s = math.exp(-math.exp(1.5))  # the released code's initial coefficient of log n
    torch.testing.assert_close(small, torch.full_like(small, 1 + s * math.log(49)))
    torch.testing.assert_close(large - small, torch.full_like(small, s * math.log(16)))


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='SelectiveSelfAttention', dim=32, num_heads=2))
    assert m(torch.randn(1, 32, 5, 7)).shape == (1, 32, 5, 7)


def test_rejects_indivisible_heads():
    with pytest.raises(ValueError, match='divisible'):
        SelectiveSelfAttention(30, 4)
