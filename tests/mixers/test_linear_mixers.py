"""InLineAttention and EnhancedLinearAttention (L2ViT) against explicit N x N attention."""
import pytest
import torch
import torch.nn.functional as F

from .mixer_checks import (compare_bf16, compare_parameter_grads, compare_with_reference,
                           randomize_)
from plugins.mixers.enhanced_linear_attention import EnhancedLinearAttention
from plugins.mixers.inline_attention import InLineAttention


def dense_inline(m, x):
    """Eq. 5 as an explicit N x N matrix, plus the per-sample 3x3 residual conv, sample by sample."""
    B, C, H, W = x.shape
    N, h, d = H * W, m.num_heads, m.head_dim
    t = x.flatten(2).transpose(1, 2)
    q = m.q(t)
    k, v = m.kv(t).chunk(2, dim=-1)
    if m.kernel_func == 'relu':
        q, k = F.relu(q), F.relu(k)
    q, k, v = (z.view(B, N, h, d).transpose(1, 2) for z in (q, k, v))
    s = m.scale
    attn = s / N * q @ k.transpose(-2, -1) + (1 - s * q @ k.mean(-2, keepdim=True).transpose(-2, -1)) / N
    out = (attn @ v).transpose(1, 2).reshape(B, N, C)
    w = m.residual(t.mean(1).unsqueeze(-1)).view(B, C, 1, 3, 3)
    vmap = v.transpose(1, 2).reshape(B, H, W, C).permute(0, 3, 1, 2)
    res = torch.cat([F.conv2d(vmap[b:b + 1], w[b], padding=1, groups=C) for b in range(B)])
    out = m.proj(out + res.flatten(2).transpose(1, 2))
    return out.transpose(1, 2).reshape(B, C, H, W)


def dense_l2vit(m, x):
    """phi(Q) phi(K)^T as an N x N matrix, row sums clamped at denom_min, then the LCM."""
    B, C, H, W = x.shape
    N, h, d = H * W, m.num_heads, m.head_dim
    t = x.flatten(2).transpose(1, 2)
    q, k, v = m.qkv(t).view(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
    a = torch.relu(q) @ torch.relu(k).transpose(-2, -1)
    out = (a @ v) * m.temperature / a.sum(-1, keepdim=True).clamp_min(m.denom_min)
    out = m.proj(out.transpose(1, 2).reshape(B, N, C)).transpose(1, 2).reshape(B, C, H, W)
    if m.with_lcm:  # the LCM by the modules' own F.conv2d (the mixer computes its gradient apart)
        lcm = m.lcm
        f = m.lcm_norm(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        out = out + lcm.conv2(lcm.bn(lcm.act(lcm.conv1(f))))
    return out


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (3, 2), (8, 8)])
@pytest.mark.parametrize('kernel_func', ['identity', 'relu'])
def test_inline_matches_dense_reference(size, kernel_func):
    m = randomize_(InLineAttention(16, num_heads=2, kernel_func=kernel_func))
    compare_with_reference(m, dense_inline, torch.randn(2, 16, *size))


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (5, 3)])
@pytest.mark.parametrize('denom_min', [100.0, 0.5])
def test_l2vit_matches_dense_reference(size, denom_min):
    m = randomize_(EnhancedLinearAttention(16, num_heads=2, denom_min=denom_min))
    m.lcm.bn.eval()  # batch statistics of a 1x1 map are degenerate; use the running ones
    compare_with_reference(m, dense_l2vit, torch.randn(2, 16, *size) * 3)


@pytest.mark.parametrize('batch,size', [(2, (13, 21)), (1, (4, 6)), (3, (1, 1))])
def test_l2vit_parameter_grads_match_dense_reference(batch, size):
    """Every weight's gradient, the LCM convolutions' (computed by their own backward) included."""
    m = randomize_(EnhancedLinearAttention(16, num_heads=2))
    m.lcm.bn.eval()
    assert compare_parameter_grads(m, dense_l2vit, torch.randn(batch, 16, *size) * 3) <= 1e-5


def test_l2vit_train_mode_grads_and_no_grad_forward():
    """Batch statistics in the BatchNorm: the gradients of x and of the LCM's weights against
    the modules' own ops; without autograd, the fused qkv path gives the same output."""
    m = randomize_(EnhancedLinearAttention(32, num_heads=4))
    x = torch.randn(2, 32, 9, 11, dtype=torch.float64)
    m = m.double()
    compare_with_reference(m, dense_l2vit, x, rtol=1e-10)
    assert compare_parameter_grads(m, dense_l2vit, x, rtol=1e-10) <= 1e-10
    with torch.no_grad():
        torch.testing.assert_close(m(x), dense_l2vit(m, x), rtol=1e-10, atol=1e-12)


def test_l2vit_without_lcm_is_the_linear_attention_alone():
    m = EnhancedLinearAttention(16, num_heads=4, with_lcm=False)
    x = torch.randn(1, 16, 6, 7)
    torch.testing.assert_close(m(x), m.attention(x))


# the LCM's LayerNorm and two 49-tap convolutions in bf16 add a few per cent to the gradient
@pytest.mark.parametrize('cls,rtol', [(InLineAttention, 5e-2), (EnhancedLinearAttention, 1e-1)])
def test_bf16_close_to_fp32(cls, rtol):
    m = cls(32, num_heads=4).eval()
    compare_bf16(m, torch.randn(2, 32, 13, 21), rtol=rtol)
