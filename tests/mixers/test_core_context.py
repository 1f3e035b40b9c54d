"""CoreContextAwareAttention (CCA-Attention) against one explicit softmax over [core tokens;
tokens] with the mask of the 2-D partition: raw tokens of the neighbouring windows, core tokens
of the others (the official dense path's form)."""
import pytest
import torch

from plugins.mixers import core_context
from plugins.mixers.core_context import CoreContextAwareAttention
from plugins.ops.global_attention import dense_attention
from plugins.registry import MODELS

from .mixer_checks import (assert_second_backward_refused, compare_bf16, compare_parameter_grads,
                           compare_with_reference, randomize_)

SIZES = [(7, 9), (11, 13), (1, 1), (5, 2)]


def cca_reference(m, x):
    b, c, h, w = x.shape
    nh, hd = m.num_heads, m.head_dim
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, nh, hd).permute(2, 0, 3, 1, 4)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    wy, wx = ys.flatten() // m.group_size[0], xs.flatten() // m.group_size[1]
    groups = sorted(set(zip(wy.tolist(), wx.tolist())))
    core_k, core_v = [], []
    for gy, gx in groups:  # core token: the group's keys and values under its mean query
        members = (wy == gy) & (wx == gx)
        q_rep = q[:, :, members].mean(2, keepdim=True)
        weights = torch.softmax(q_rep @ k[:, :, members].transpose(-1, -2) * hd ** -0.5, -1)
        core_k.append(weights @ k[:, :, members])
        core_v.append(weights @ v[:, :, members])
    core_k, core_v = torch.cat(core_k, 2), torch.cat(core_v, 2)               # B h G d
    gy, gx = torch.tensor([g[0] for g in groups]), torch.tensor([g[1] for g in groups])
    r = m.local_radius
    near_token = ((wy[:, None] - wy[None]).abs() <= r) & ((wx[:, None] - wx[None]).abs() <= r)
    far_core = ((wy[:, None] - gy[None]).abs() > r) | ((wx[:, None] - gx[None]).abs() > r)
    out = dense_attention(q, torch.cat([core_k, k], 2), torch.cat([core_v, v], 2),
                          mask=torch.cat([far_core, near_token], 1))
    out = m.proj(out.transpose(1, 2).reshape(b, h * w, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


def _mixer(**kw):
    return randomize_(CoreContextAwareAttention(16, 2, **kw))


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(group_size=2), dict(group_size=3, local_radius=0),
                                dict(group_size=(2, 3), local_radius=2)])
def test_matches_dense_core_and_local_reference(size, kw):
    compare_with_reference(_mixer(**kw), cca_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    compare_parameter_grads(_mixer(group_size=2), cca_reference, torch.randn(2, 16, 7, 9))


def test_several_heads_and_radius_beyond_the_grid():
    m = randomize_(CoreContextAwareAttention(32, 4, group_size=2, local_radius=3))
    compare_with_reference(m, cca_reference, torch.randn(1, 32, 9, 5))


def test_heads_processed_one_at_a_time(monkeypatch):
    monkeypatch.setattr(core_context, '_CHUNK_ELEMS', 1)  # as on large maps
    m = randomize_(CoreContextAwareAttention(32, 4, group_size=2))
    compare_with_reference(m, cca_reference, torch.randn(2, 32, 7, 9))
    compare_parameter_grads(m, cca_reference, torch.randn(2, 32, 5, 6))


def test_second_backward_is_refused():
    assert_second_backward_refused(_mixer(group_size=2), torch.randn(1, 16, 5, 7))


def test_eval_is_deterministic():
    m = _mixer().eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(group_size=0), 'group_size'),
                                      (dict(local_radius=-1), 'local_radius')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        CoreContextAwareAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='CoreContextAwareAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


def test_bfloat16_close_to_float32():
    m = randomize_(CoreContextAwareAttention(32, 4, group_size=2), 0.1)
    compare_bf16(m, torch.randn(2, 32, 13, 21))
