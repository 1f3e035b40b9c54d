"""Plug-in blocks: the paper's equations, shapes, identity-at-init, and the mmcv plugin contract."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_plugin_layer

from plugins.blocks.eca import ECABlock, eca_kernel_size
from plugins.blocks.ela import ELABlock
from plugins.blocks.lka import LargeKernelAttention
from plugins.blocks.psa import PSABlock
from plugins.blocks.ulsam import ULSAMBlock

BLOCKS = [
    dict(type='ECABlock'),
    dict(type='ELABlock', variant='T'),
    dict(type='ELABlock', variant='B'),
    dict(type='ELABlock', variant='S'),
    dict(type='ELABlock', variant='L'),
    dict(type='ULSAMBlock', num_subspaces=4),
    dict(type='PSABlock', mode='parallel'),
    dict(type='PSABlock', mode='sequential'),
    dict(type='LargeKernelAttention'),
]


@pytest.mark.parametrize('cfg', BLOCKS, ids=lambda c: f"{c['type']}-{c.get('variant', c.get('mode', ''))}")
def test_block_preserves_shape_at_odd_size_and_has_gradients(cfg):
    _, block = build_plugin_layer(dict(cfg), in_channels=64)
    x = torch.randn(2, 64, 97 // 8, 131 // 8, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad)


@pytest.mark.parametrize('cfg', BLOCKS, ids=lambda c: c['type'])
def test_identity_init_leaves_the_input_unchanged(cfg):
    _, block = build_plugin_layer(dict(cfg, identity_init=True), in_channels=32)
    x = torch.randn(2, 32, 9, 11)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.identity_scale.fill_(1.0)
    _, plain = build_plugin_layer(dict(cfg), in_channels=32)
    plain.load_state_dict({k: v for k, v in block.state_dict().items() if k != 'identity_scale'})
    torch.testing.assert_close(block.eval()(x), plain.eval()(x))


def test_wrong_channels_are_a_clear_error():
    block = ECABlock(64)
    with pytest.raises(ValueError, match='built for 64 channels'):
        block(torch.randn(1, 32, 8, 8))


@pytest.mark.parametrize('channels,k', [(64, 3), (128, 5), (256, 5), (512, 5), (2048, 7)])
def test_eca_kernel_size_follows_eq12(channels, k):
    assert eca_kernel_size(channels) == k
    assert ECABlock(channels).conv.kernel_size == (k, )


def test_eca_matches_its_equation():
    block = ECABlock(16, kernel_size=3)
    x = torch.randn(2, 16, 5, 7)
    w = block.conv.weight.view(3)
    y = x.mean(dim=(2, 3))
    padded = F.pad(y, (1, 1))
    z = torch.stack([(padded[:, c:c + 3] * w).sum(-1) for c in range(16)], 1)
    torch.testing.assert_close(block(x), x * torch.sigmoid(z)[..., None, None])


def test_ela_matches_its_equation_and_variants():
    block = ELABlock(64, variant='S')
    assert block.conv.groups == 8 and block.conv.kernel_size == (5, )
    assert block.norm.num_groups == 16
    x = torch.randn(2, 64, 6, 9)

    def gate(strip):
        return torch.sigmoid(block.norm(block.conv(strip)))

    expected = x * gate(x.mean(3))[..., None] * gate(x.mean(2))[..., None, :]
    torch.testing.assert_close(block(x), expected)
    assert ELABlock(64, variant='B').conv.groups == 64


def test_ela_falls_back_when_channels_are_fewer_than_groups():
    block = ELABlock(24, variant='T')  # GN32 cannot split 24 channels
    assert block.norm.num_groups == 24
    assert block(torch.randn(1, 24, 5, 5)).shape == (1, 24, 5, 5)


def test_ulsam_matches_its_equation():
    block = ULSAMBlock(8, num_subspaces=2)
    x = torch.randn(1, 8, 5, 6)
    outs = []
    for n in range(2):
        f = x[:, 4 * n:4 * n + 4]
        dw = f * block.dw_conv.weight[4 * n:4 * n + 4].view(1, 4, 1, 1) + \
            block.dw_conv.bias[4 * n:4 * n + 4].view(1, 4, 1, 1)
        pooled = F.max_pool2d(dw, 3, 1, 1)
        a = (pooled * block.pw_conv.weight[n].view(1, 4, 1, 1)).sum(1) + block.pw_conv.bias[n]
        a = a.flatten(1).softmax(-1).view(1, 1, 5, 6)
        outs.append(a * f + f)
    torch.testing.assert_close(block(x), torch.cat(outs, 1))


def test_psa_branches_follow_the_paper():
    block = PSABlock(8)
    x = torch.randn(2, 8, 4, 5)
    # channel-only: softmax over HW of W_q, weighted sum of W_v, W_z, LayerNorm, sigmoid
    q = block.ch_query(x).flatten(2).softmax(-1)
    z = (block.ch_value(x).flatten(2) * q).sum(-1)[..., None, None]
    a_ch = torch.sigmoid(block.ch_norm(block.ch_up(z)))
    torch.testing.assert_close(block.channel_gate(x), a_ch)
    # spatial-only: softmax over channels of pooled W_q, weighted sum of W_v over channels
    sq = block.sp_query(x).mean((2, 3)).softmax(-1)
    a_sp = torch.sigmoid((block.sp_value(x) * sq[..., None, None]).sum(1, keepdim=True))
    torch.testing.assert_close(block.spatial_gate(x), a_sp)
    torch.testing.assert_close(block(x), a_ch * x + a_sp * x)
    seq = PSABlock(8, mode='sequential')
    seq.load_state_dict(block.state_dict())
    zc = a_ch * x
    torch.testing.assert_close(seq(x), seq.spatial_gate(zc) * zc)


def test_lka_decomposition_of_the_21x21_kernel():
    """5x5 depth-wise, then 7x7 depth-wise with dilation 3: 5 + 3 * 6 = 23 pixels of reach."""
    block = LargeKernelAttention(4)
    assert block.dw_conv.kernel_size == (5, 5)
    assert block.dw_dilated_conv.kernel_size == (7, 7) and block.dw_dilated_conv.dilation == (3, 3)
    x = torch.zeros(1, 4, 41, 41, requires_grad=True)
    block(x + 1)[0, :, 20, 20].sum().backward()
    reach = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert reach[:, 0].max() - reach[:, 0].min() + 1 == 23
