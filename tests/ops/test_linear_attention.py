"""Linear attention ops against their explicit N x N forms."""
import torch

from plugins.ops.linear_attention import (dynamic_depthwise_conv2d, injective_linear_attention,
                                          relu_linear_attention)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_injective_attention_equals_its_row_stochastic_matrix():
    q, k, v = (torch.randn(2, 3, 37, 8, dtype=torch.float64) for _ in range(3))
    s, N = 8 ** -0.5, 37
    attn = s / N * q @ k.transpose(-2, -1) + (1 - s * q @ k.mean(-2, keepdim=True).transpose(-2, -1)) / N
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, 37, dtype=torch.float64))
    assert rel(injective_linear_attention(q.float(), k.float(), v.float(), s), attn @ v) < 1e-5


def test_relu_linear_attention_equals_explicit_form_with_clamped_normaliser():
    q, k, v = (torch.randn(2, 3, 50, 8, dtype=torch.float64) for _ in range(3))
    t = torch.rand(3, 1, 1, dtype=torch.float64)
    for c in (1.0, 100.0):
        a = torch.relu(q) @ torch.relu(k).transpose(-2, -1)
        expected = (a @ v) * t / a.sum(-1, keepdim=True).clamp_min(c)
        assert rel(relu_linear_attention(q, k, v, t, c), expected) < 1e-12


def test_dynamic_depthwise_conv_uses_each_samples_kernel():
    x = torch.randn(3, 4, 6, 5)
    w = torch.randn(3, 4, 3, 3)
    out = dynamic_depthwise_conv2d(x, w)
    for b in range(3):
        ref = torch.nn.functional.conv2d(x[b:b + 1], w[b].unsqueeze(1), padding=1, groups=4)
        torch.testing.assert_close(out[b:b + 1], ref)
