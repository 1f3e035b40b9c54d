"""HyenaMixer2d: the FFT path against the direct (non-FFT) 2-D convolution, on any grid."""
import pytest
import torch

from .mixer_checks import compare_bf16, compare_with_reference, randomize_
from plugins.mixers.hyena import HyenaMixer2d
from plugins.ops.fft_conv import direct_causal_conv2d


def direct_hyena(m, x):
    """The Hyena recurrence with every long convolution computed directly, 4 flips explicit."""
    B, C, H, W = x.shape
    u = m.short_filter(m.in_proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    *gates, v = u.split(C, dim=1)
    k = m.filter_fn(H, W).permute(2, 0, 1).reshape(m.order - 1, C, H, W)
    bias = m.filter_fn.bias.view(m.order - 1, C, 1, 1)
    flips = [(), (-1, -2), (-1,), (-2,)] if m.directional_mode in ('4dir', '4dirp') else [()]
    ys = []
    for f in flips:
        fl = (lambda t: t.flip(f)) if f else (lambda t: t)
        vv = fl(v)
        for o, g in enumerate(reversed(gates[1:])):
            vv = vv * fl(g)
            if m.directional_mode == 'seq' and o == 0:
                vv = vv.flip(-1, -2)
            vv = direct_causal_conv2d(vv, k[o], m.fft_scale(H, W)) + vv * bias[o]
            if m.directional_mode == 'seq' and o == 0:
                vv = vv.flip(-1, -2)
        ys.append(fl(vv * fl(gates[0])).permute(0, 2, 3, 1))
    if len(ys) == 1:
        y = ys[0]
    elif m.directional_mode == '4dir':
        y = m.linear_mix(torch.stack(ys, -1)).squeeze(-1)
    else:
        y = m.linear_mix(torch.stack(ys, -1).flatten(-2))
    return m.out_proj(y).permute(0, 3, 1, 2)


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (3, 2), (14, 14)])
@pytest.mark.parametrize('kw', [dict(), dict(directional_mode='seq'), dict(directional_mode='4dir'),
                                dict(directional_mode='4dirp'), dict(filter_mode='2d'),
                                dict(filter_mode='2d', window_mode='symmetric'), dict(order=3)])
def test_matches_direct_convolution(size, kw):
    m = randomize_(HyenaMixer2d(16, l_max=14, filter_order=8, **kw))
    compare_with_reference(m, direct_hyena, torch.randn(2, 16, *size))


def test_positional_features_are_resampled_not_asserted():
    m = HyenaMixer2d(8, l_max=14, filter_order=8)
    z, t = m.filter_fn.pos_emb(14)
    assert z is m.filter_fn.pos_emb.z
    z5, t5 = m.filter_fn.pos_emb(5)
    torch.testing.assert_close(z5[:, [0, -1]], z[:, [0, -1]])   # the ends stay where they were
    torch.testing.assert_close(t5[0, :, 0], torch.linspace(0, 1, 5))


def test_symmetric_window_runs_on_cpu():
    m = HyenaMixer2d(8, l_max=14, filter_order=8, filter_mode='2d', window_mode='symettric')
    assert m(torch.randn(1, 8, 5, 9)).shape == (1, 8, 5, 9)


def test_bf16_close_to_fp32():
    compare_bf16(HyenaMixer2d(32, l_max=14, filter_order=16), torch.randn(2, 32, 13, 21))
