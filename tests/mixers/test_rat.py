"""RATAttention against a step-by-step recurrence per window and an explicit softmax over the
other windows' (rotated) summaries and the own running state."""
import math

import pytest
import torch

from plugins.mixers.rat import RATAttention, rope_2d
from plugins.registry import MODELS

from .mixer_checks import (assert_second_backward_refused, compare_bf16, compare_parameter_grads,
                           compare_with_reference, randomize_)

SIZES = [(7, 9), (11, 13), (1, 1), (3, 8)]


def _rotate(x, row, col, base):
    """RoPE as complex multiplication: channel pairs (j, j + d/4) of each half form one complex
    number, turned by ``pos * base^(-j / (d/4))`` (rows for the first half, columns for the
    second)."""
    d = x.shape[-1]
    quarter = d // 4
    freq = base ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    out = []
    for half, pos in zip(x.split(d // 2, -1), (row, col)):
        z = torch.complex(half[..., :quarter], half[..., quarter:])
        z = z * torch.polar(torch.ones_like(freq), pos * freq).to(z.dtype)
        out += [z.real, z.imag]
    return torch.cat(out, -1)


def rat_reference(m, x):
    b, c, h, w = x.shape
    nh, hd = m.num_heads, m.head_dim
    gd = m.num_groups * hd
    t = x.permute(0, 2, 3, 1)
    z, xv, g, q, k = m.in_proj(t).split([c, c, c, gd, gd], -1)
    q = torch.cat([q] * (nh // m.num_groups), -1).view(b, h, w, nh, hd)
    k = torch.cat([k] * (nh // m.num_groups), -1)
    g = torch.sigmoid(g + m.gate_bias)
    wh, ww = m.window_size
    windows = {}
    for y in range(h):  # raster order inside a window = raster order of the map, filtered
        for x_ in range(w):
            windows.setdefault((y // wh, x_ // ww), []).append((y, x_))
    state_x = torch.zeros(b, h, w, c, dtype=x.dtype)
    state_k = torch.zeros(b, h, w, c, dtype=x.dtype)
    summary = {}
    for key, cells in windows.items():
        hx = torch.zeros(b, c, dtype=x.dtype)
        hk = torch.zeros(b, c, dtype=x.dtype)
        for y, x_ in cells:
            gate = g[:, y, x_]
            hx = gate * hx + (1 - gate) * xv[:, y, x_]
            hk = gate * hk + (1 - gate) * k[:, y, x_]
            state_x[:, y, x_], state_k[:, y, x_] = hx, hk
        summary[key] = (hk.view(b, nh, hd), hx.view(b, nh, hd))
    keys = list(summary)
    sum_k = torch.stack([summary[key][0] for key in keys], 2)                 # B h nW d
    sum_x = torch.stack([summary[key][1] for key in keys], 2)
    if m.rope:
        sum_k = torch.stack([_rotate(summary[key][0], *key, m.rope_base) for key in keys], 2)
    out = torch.zeros(b, h, w, nh, hd, dtype=x.dtype)
    scale = hd ** -0.5
    for index, (key, cells) in enumerate(windows.items()):
        ys, xs = zip(*cells)
        qi = q[:, ys, xs].transpose(1, 2)                                     # B h n d
        qr = _rotate(qi, *key, m.rope_base) if m.rope else qi
        own_k = state_k[:, ys, xs].view(b, -1, nh, hd).transpose(1, 2)
        own_x = state_x[:, ys, xs].view(b, -1, nh, hd).transpose(1, 2)
        others = torch.einsum('bhnd,bhwd->bhnw', qr, sum_k) * scale
        others[..., keys.index(key)] = float('-inf')                          # not its own
        own = (qi * own_k).sum(-1, keepdim=True) * scale
        p = torch.cat([others, own], -1).softmax(-1)
        res = p[..., :-1] @ sum_x + p[..., -1:] * own_x                       # B h n d
        out[:, ys, xs] = res.transpose(1, 2)
    out = m.out_proj(torch.sigmoid(z) * out.reshape(b, h, w, c))
    return out.permute(0, 3, 1, 2)


def _mixer(**kw):
    m = RATAttention(16, 2, **kw)
    randomize_(m, 0.3)
    with torch.no_grad():  # gates spread over (0, 1), as the official bias init gives
        m.gate_bias.uniform_(-2, 2)
    return m


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(window_size=3), dict(window_size=(2, 4), rope=False),
                                dict(window_size=4, num_groups=1)])
def test_matches_sequential_recurrence_and_explicit_softmax(size, kw):
    compare_with_reference(_mixer(**kw), rat_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    compare_parameter_grads(_mixer(window_size=3), rat_reference, torch.randn(2, 16, 5, 7))


def test_input_gradients_with_groups_shared_by_several_heads():
    m = randomize_(RATAttention(32, 4, window_size=(3, 2), num_groups=2), 0.3)
    compare_with_reference(m, rat_reference, torch.randn(1, 32, 7, 5))


def test_second_backward_is_refused():
    assert_second_backward_refused(_mixer(window_size=3), torch.randn(1, 16, 5, 7))


def test_rope_2d_preserves_norms_and_relative_positions():
    x, y = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    rows, cols = torch.tensor([0, 2, 5]), torch.tensor([1, 4, 3])
    rx = rope_2d(x, rows, cols)
    torch.testing.assert_close(rx.norm(dim=-1), x.norm(dim=-1))
    dot = (rope_2d(x, rows, cols) * rope_2d(y, rows, cols)).sum(-1)
    shifted = (rope_2d(x, rows + 3, cols - 2) * rope_2d(y, rows + 3, cols - 2)).sum(-1)
    torch.testing.assert_close(dot, shifted)


def test_gate_bias_starts_as_the_official_log_uniform():
    m = RATAttention(64, 2, window_size=8)
    assert (m.gate_bias >= 0).all() and (m.gate_bias <= math.log(63) + 1e-6).all()


def test_eval_is_deterministic():
    m = _mixer(window_size=3).eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(num_groups=3), 'num_groups'),
                                      (dict(window_size=0), 'window_size'),
                                      (dict(dim=24, num_heads=4), 'rope')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        RATAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='RATAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


def test_bfloat16_close_to_float32():
    compare_bf16(randomize_(RATAttention(32, 4, window_size=3), 0.1), torch.randn(2, 32, 13, 21))
