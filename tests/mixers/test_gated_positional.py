"""GatedPositionalAttention (ConViT GPSA): dense reference on non-square grids, timm on square."""
import pytest
import torch

from benchmarks.peers import import_timm
from .mixer_checks import compare_bf16, compare_with_reference, randomize_
from plugins.mixers.gated_positional import GatedPositionalAttention, relative_position_features


def dense_gpsa(m, x):
    """Eq. 5 with the full N x N positional scores of the real H x W grid, as timm computes it."""
    B, C, H, W = x.shape
    N, h, d = H * W, m.num_heads, m.head_dim
    t = x.flatten(2).transpose(1, 2)
    q, k = m.qk(t).view(B, N, 2, h, d).permute(2, 0, 3, 1, 4)
    v = m.v(t).view(B, N, h, d).transpose(1, 2)
    rel = relative_position_features(H, W, dtype=x.dtype)
    pos = m.pos_proj(rel).permute(2, 0, 1).softmax(dim=-1)                # h N N
    patch = ((q @ k.transpose(-2, -1)) * m.scale).softmax(dim=-1)
    g = torch.sigmoid(m.gating_param).view(1, h, 1, 1)
    attn = (1 - g) * patch + g * pos
    attn = attn / attn.sum(dim=-1, keepdim=True)
    out = m.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
    return out.transpose(1, 2).reshape(B, C, H, W)


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (5, 3), (8, 8)])
def test_matches_dense_reference_on_any_grid(size):
    m = GatedPositionalAttention(16, num_heads=4)
    with torch.no_grad():
        m.gating_param.copy_(torch.randn(4))
        m.pos_proj.weight.add_(0.3 * torch.randn_like(m.pos_proj.weight))
    compare_with_reference(m, dense_gpsa, torch.randn(2, 16, *size))


def test_locality_init_makes_heads_look_at_their_offsets():
    m = GatedPositionalAttention(36, num_heads=9, locality_strength=4.0)
    p_y, p_x = m.positional_attention(9, 9)
    # head h1 + 3 * h2 peaks at dy = h1 - 1, dx = h2 - 1 from the centre query
    for h1 in range(3):
        for h2 in range(3):
            head = h1 + 3 * h2
            assert p_y[head, 4].argmax().item() == 4 + h1 - 1
            assert p_x[head, 4].argmax().item() == 4 + h2 - 1
    assert torch.equal(m.v.weight, torch.eye(36))


def test_bf16_close_to_fp32():
    compare_bf16(GatedPositionalAttention(32, num_heads=4), torch.randn(2, 32, 9, 14))


def test_same_numbers_as_timm_gpsa_on_square_grid():
    timm = import_timm()
    if timm is None:
        pytest.skip('timm peer not installed')
    from timm.models.convit import GPSA
    m = randomize_(GatedPositionalAttention(48, num_heads=4))
    peer = GPSA(48, num_heads=4)
    peer.load_state_dict(m.state_dict())
    x = torch.randn(2, 48, 7, 7)
    y_peer = peer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(m(x), y_peer, rtol=1e-5, atol=1e-5)
