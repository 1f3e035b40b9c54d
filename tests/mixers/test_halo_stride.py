"""HaloAttention with strided queries (HaloNet's down-sampling attention blocks) against timm's
``HaloAttn(stride=2)`` with the same weights, at sizes timm accepts and, padded, at any size."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks.peers import import_timm
from plugins.mixers.halo import HaloAttention
from plugins.ops.halo import halo_attention_2d

from .mixer_checks import randomize_, rel_err

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


def timm_strided_halo(m):
    from timm.layers.halo_attn import HaloAttn
    peer = HaloAttn(m.q.in_channels, stride=m.stride, num_heads=m.num_heads,
                    block_size=m.block_size, halo_size=m.halo_size, dim_head=m.dim_head_qk,
                    qkv_bias=m.q.bias is not None, scale_pos_embed=m.scale_pos_embed)
    peer.load_state_dict(m.state_dict())
    return peer.eval()


@needs_timm
@pytest.mark.parametrize('size', [(8, 16), (16, 24)])
@pytest.mark.parametrize('scale_pos_embed', [False, True])
def test_strided_halo_equals_timm(size, scale_pos_embed):
    m = randomize_(HaloAttention(16, 2, block_size=4, halo_size=1, stride=2,
                                 scale_pos_embed=scale_pos_embed), 0.2).eval()
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        out, ref = m(x), timm_strided_halo(m)(x)
    assert out.shape == (2, 16, size[0] // 2, size[1] // 2)
    assert rel_err(out, ref) <= 1e-5


@needs_timm
@pytest.mark.parametrize('size', [(13, 21), (5, 6), (1, 9)])
def test_strided_halo_any_size_is_padded_timm_cropped(size):
    """Zero padding to block multiples (no bias: zeros after the projections too), timm, crop to
    ceil(H / 2) x ceil(W / 2) (what a stride-2 1x1 convolution gives)."""
    m = randomize_(HaloAttention(16, 2, block_size=4, halo_size=1, stride=2), 0.2).eval()
    h, w = size
    x = torch.randn(2, 16, h, w)
    with torch.no_grad():
        out = m(x)
        ref = timm_strided_halo(m)(F.pad(x, (0, (-w) % 4, 0, (-h) % 4)))
    assert out.shape == (2, 16, -(-h // 2), -(-w // 2))
    assert rel_err(out, ref[:, :, :out.shape[2], :out.shape[3]]) <= 1e-5


def test_strided_halo_gradients_reach_every_parameter():
    m = HaloAttention(16, 2, block_size=4, halo_size=1, stride=2)
    m(torch.randn(1, 16, 9, 11)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_stride_must_divide_the_block():
    with pytest.raises(ValueError, match='stride'):
        HaloAttention(16, 2, block_size=6, stride=4)
    q = torch.randn(1, 2, 4, 4, 8)
    k = v = torch.randn(1, 2, 8, 8, 8)
    with pytest.raises(ValueError, match='sub-sampled'):
        halo_attention_2d(q, k, v, 4, 1, query_stride=1)
