"""ChannelGroupAttention (DaViT): dense reference, odd sizes, bf16, and timm's ChannelAttention."""
import pytest
import torch

from benchmarks.peers import import_timm
from .mixer_checks import compare_bf16, compare_with_reference, randomize_
from plugins.mixers.channel_group import ChannelGroupAttention


def dense_channel_attention(m, x):
    """Eq. 3 written out: per group, softmax over channels of K^T V / sqrt(C_h), applied to Q."""
    B, C, H, W = x.shape
    t = x.flatten(2).transpose(1, 2)
    q, k, v = m.qkv(t).chunk(3, dim=-1)                                   # B N C
    outs = []
    for g in range(m.num_heads):
        sl = slice(g * m.head_dim, (g + 1) * m.head_dim)
        qg, kg, vg = q[..., sl], k[..., sl], v[..., sl]                   # B N C_h
        if m.version == 1:
            a = torch.softmax(torch.einsum('bni,bnj->bij', kg, vg) * m.head_dim ** -0.5, dim=-1)
            outs.append(torch.einsum('bij,bnj->bni', a, qg))
        else:
            s = (H * W) ** -0.5 if m.dynamic_scale else m.head_dim ** -0.5
            a = torch.softmax(torch.einsum('bni,bnj->bij', qg, kg) * s, dim=-1)
            outs.append(torch.einsum('bij,bnj->bni', a, vg))
    out = m.proj(torch.cat(outs, dim=-1))
    return out.transpose(1, 2).reshape(B, C, H, W)


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (7, 7), (2, 9)])
@pytest.mark.parametrize('version', [1, 2])
def test_matches_dense_reference(size, version):
    m = ChannelGroupAttention(24, num_heads=3, version=version)
    x = torch.randn(2, 24, *size)
    compare_with_reference(m, dense_channel_attention, x)


def test_bf16_close_to_fp32():
    compare_bf16(ChannelGroupAttention(32, num_heads=4), torch.randn(2, 32, 13, 21))


@pytest.mark.parametrize('version', [1, 2])
def test_same_numbers_as_timm_channel_attention(version):
    timm = import_timm()
    if timm is None:
        pytest.skip('timm peer not installed')
    from timm.models import davit
    peer_cls = davit.ChannelAttention if version == 1 else davit.ChannelAttentionV2
    m = ChannelGroupAttention(48, num_heads=4, version=version)
    peer = peer_cls(48, num_heads=4, qkv_bias=True)
    peer.load_state_dict(m.state_dict())
    x = torch.randn(2, 48, 11, 6)
    y_peer = peer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(m(x), y_peer, rtol=1e-5, atol=1e-6)


def test_rejects_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match='num_heads'):
        ChannelGroupAttention(10, num_heads=3)
