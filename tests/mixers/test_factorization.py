"""FactorizationAttention (FaViT FaSA) against explicit softmax attention over its factorised keys."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from .mixer_checks import compare_bf16, compare_with_reference, randomize_
from plugins.mixers.factorization import FactorizationAttention


def repeated_reflection_pad(x, bottom, right):
    """ReflectionPad2d applied again and again (each time by less than the size), replicate for 1."""
    while bottom or right:
        H, W = x.shape[-2:]
        b = min(bottom, H - 1) if H > 1 else 0
        r = min(right, W - 1) if W > 1 else 0
        x = nn.ReflectionPad2d((0, r, 0, b))(x) if (b or r) else x
        if H == 1 and bottom:
            x, b = x.expand(*x.shape[:-2], 1 + bottom, x.shape[-1]), bottom
        if W == 1 and right:
            x, r = x.expand(*x.shape[:-1], 1 + right), right
        bottom, right = bottom - b, right - r
    return x


def softmax_attention(q, k, v, scale):
    return ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v


def dense_fasa(m, x):
    """FaSA with every attention matrix explicit; padding and pooling as FaViT's code."""
    B, C, H, W = x.shape
    N, h = H * W, m.num_heads
    c0 = m.single_dim[0]
    t = x.flatten(2).transpose(1, 2)
    q = m.q(t)
    # global group: the strided SR conv (which drops the rows / columns beyond a multiple of sr,
    # as FaViT's; 'pad' and maps smaller than sr: zero-padded to a multiple), LN
    xg = x[:, :c0]
    if m.sr_remainder == 'pad' or min(H, W) < m.sr_ratio:
        xg = F.pad(xg, (0, (-W) % m.sr_ratio, 0, (-H) % m.sr_ratio))
    red = m.sr(xg)
    Hg, Wg = red.shape[-2:]
    kg, vg = m.kv_g(m.norm(red.flatten(2).transpose(1, 2))).chunk(2, -1)
    vg = vg + m.local_conv_g(vg.transpose(1, 2).reshape(B, c0, Hg, Wg)).flatten(2).transpose(1, 2)
    outs = [softmax_attention(q[..., :c0], kg, vg, m.scales[0])]
    q_l = q[..., c0:].reshape(B, N, h, -1).permute(0, 2, 1, 3)
    kv_l = m.kv_l(x[:, c0:])
    qs = ks = 0
    k = m.window_size
    for i, ci in enumerate(m.single_dim[1:], start=1):
        d = ci // h
        s = m.strides[i - 1]
        kv = repeated_reflection_pad(kv_l[:, ks:ks + ci], (-H) % s, (-W) % s)
        kv = nn.Unfold(k, dilation=m.dilations[i - 1], stride=s)(kv)
        kv = kv.reshape(B, h, d, k * k, -1).permute(0, 1, 3, 4, 2).reshape(B, h, k * k, -1)
        kv = nn.AdaptiveAvgPool2d((None, d))(kv)
        key, val = m.single_heads[i - 1](m.fcs[i - 1](kv)).chunk(2, -1)
        val = val + m.local_convs[i - 1](val.transpose(2, 3).reshape(B, ci, k, k)).view(
            B, h, d, k * k).transpose(2, 3)
        o = softmax_attention(q_l[..., qs:qs + d], key, val, m.scales[i])
        outs.append(o.permute(0, 2, 1, 3).reshape(B, N, ci))
        qs, ks = qs + d, ks + ci
    out = m.proj(torch.cat(outs, -1))
    return out.transpose(1, 2).reshape(B, C, H, W)


@pytest.mark.parametrize('remainder', ['drop', 'pad'])
@pytest.mark.parametrize('size', [(13, 21), (3, 3), (1, 1), (2, 50), (16, 16)])
@pytest.mark.parametrize('dim,heads,sr', [(32, 2, 8), (32, 2, 1), (64, 2, 2)])
def test_matches_dense_reference(size, dim, heads, sr, remainder):
    m = randomize_(FactorizationAttention(dim, num_heads=heads, sr_ratio=sr,
                                          sr_remainder=remainder))
    compare_with_reference(m, dense_fasa, torch.randn(2, dim, *size))


def test_the_rows_beyond_a_multiple_of_sr_do_not_reach_the_global_keys():
    """As the official conv, the reduction reads rows 0..15 of a 19-row map with sr 8."""
    m = randomize_(FactorizationAttention(32, num_heads=2, sr_ratio=8))
    x = torch.randn(1, 32, 19, 16)
    changed = x.clone()
    changed[:, :, 16:] += 1
    g = m.single_dim[0]
    q = m.q(x.flatten(2).transpose(1, 2))[..., :g].unsqueeze(1)
    assert torch.equal(m.global_group(x[:, :g], q), m.global_group(changed[:, :g], q))


def test_bf16_close_to_fp32():
    compare_bf16(FactorizationAttention(64, num_heads=2, sr_ratio=4), torch.randn(2, 64, 13, 21))


def test_rejects_dim_not_divisible_by_the_group_ratio():
    with pytest.raises(ValueError, match='sum\\(mul\\)'):
        FactorizationAttention(40, num_heads=1, sr_ratio=8)
