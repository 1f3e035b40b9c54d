"""The phase-grid dilated depth-wise conv equals the library's dilated conv, forward and backward."""
import pytest
import torch
import torch.nn.functional as F

from plugins.ops.depthwise_conv import dilated_depthwise_conv2d


@pytest.mark.parametrize('size', [(13, 21), (2, 5), (48, 48), (25, 7)])
@pytest.mark.parametrize('k,d', [(7, 3), (5, 2), (3, 1), (3, 4)])
def test_equals_the_dilated_convolution(size, k, d):
    x = torch.randn(2, 6, *size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 1, k, k, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ours = dilated_depthwise_conv2d(x, weight, bias, d)
    ref = F.conv2d(x, weight, bias, padding=d * (k // 2), dilation=d, groups=6)
    torch.testing.assert_close(ours, ref)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(ours, (x, weight, bias), grad)
    want = torch.autograd.grad(ref, (x, weight, bias), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
