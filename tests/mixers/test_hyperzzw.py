"""HyperZZWMixer: the FFT global branch and the local branches are exact against the direct
(sliding-sum) computation of the same operator, on any H x W."""
import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.hyperzzw import HyperZZWMixer, coordinate_grid
from plugins.ops.fft_conv import fft_conv2d_same
from plugins.registry import MODELS

from .mixer_checks import compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (8, 6)]


def sliding_sum(z, kernel):
    """y[b, c, i, j] = sum_{a, e} kernel[b, c, a, e] z[b, c, i + a - (kh-1)//2, j + e - (kw-1)//2],
    zero outside: every window read out by unfold, then weighted and summed."""
    b, c, h, w = z.shape
    kh, kw = kernel.shape[-2:]
    pad = ((kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)
    patches = F.unfold(F.pad(z, pad), (kh, kw)).view(b, c, kh * kw, h * w)
    return (patches * kernel.reshape(b, c, kh * kw, 1)).sum(2).view(b, c, h, w)


def direct_reference(m, x):
    h, w = x.shape[-2:]
    branches = [sliding_sum(x, m.global_hyper_kernel(h, w, x) * x)]
    branches += [sliding_sum(x, local(x)) for local in m.local_kernels]
    return m.bottleneck(torch.cat(branches, 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize('size', SIZES)
def test_matches_direct_computation(size):
    m = randomize_(HyperZZWMixer(8, local_kernel_sizes=(3, 4), global_hidden=8, local_hidden=8))
    compare_with_reference(m, direct_reference, torch.randn(2, 8, *size))


def test_parameter_grads_match_direct_computation():
    m = randomize_(HyperZZWMixer(8, local_kernel_sizes=(3,), global_hidden=8, local_hidden=8))
    assert compare_parameter_grads(m, direct_reference, torch.randn(2, 8, 9, 7)) <= 1e-5


# kernels as large as the map, even, wider than the FFT's ~1.5x padding, one per batch or shared
@pytest.mark.parametrize('u_shape,k_shape', [
    ((2, 3, 7, 9), (2, 3, 7, 9)), ((2, 3, 7, 9), (1, 3, 7, 9)), ((1, 3, 6, 7), (3, 5, 5)),
    ((2, 2, 5, 8), (2, 2, 12, 3)), ((1, 2, 4, 5), (1, 2, 2, 4)), ((2, 3, 6, 6), (1, 3, 13, 14)),
    ((1, 1, 3, 4), (1, 1, 30, 2)), ((1, 2, 1, 1), (1, 2, 1, 1))])
def test_fft_same_conv_and_its_gradients_match_the_sliding_sum(u_shape, k_shape):
    u = torch.randn(u_shape, dtype=torch.float64, requires_grad=True)
    k = torch.randn(k_shape, dtype=torch.float64, requires_grad=True)
    y = fft_conv2d_same(u, k)
    y_ref = sliding_sum(u, k.expand(u_shape[0], *k_shape[-3:]))
    g = torch.randn_like(y)
    torch.testing.assert_close(y, y_ref)
    for a, b in zip(torch.autograd.grad(y, (u, k), g), torch.autograd.grad(y_ref, (u, k), g)):
        torch.testing.assert_close(a, b)


def test_global_kernel_is_sampled_at_the_maps_own_coordinates():
    m = HyperZZWMixer(8)
    torch.nn.init.zeros_(m.global_kernel.output_linear.bias)
    x = torch.randn(1, 8, 5, 9)
    small, large = m.global_hyper_kernel(5, 9, x), m.global_hyper_kernel(9, 17, x)
    assert small.shape == (8, 5, 9) and large.shape == (8, 9, 17)
    # the same coordinates (every other grid point of the larger map) give the same values, up to
    # the (kernel entries)^-1/2 rescaling of the output weights
    torch.testing.assert_close(small * 45 ** 0.5, large[:, ::2, ::2] * 153 ** 0.5)
    assert coordinate_grid(1, 3).tolist() == [[-1.0, -1.0], [-1.0, 0.0], [-1.0, 1.0]]


def test_local_kernels_are_per_image():
    m = randomize_(HyperZZWMixer(8, local_kernel_sizes=(3,)))
    x = torch.randn(3, 8, 7, 9)
    other = torch.cat([x[:1], torch.randn(2, 8, 7, 9)])
    torch.testing.assert_close(m(x)[0], m(other)[0])


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='HyperZZWMixer', dim=16, num_heads=2))
    assert m(torch.randn(1, 16, 1, 3)).shape == (1, 16, 1, 3)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='local_kernel_sizes'):
        HyperZZWMixer(8, local_kernel_sizes=(3, 0))
    with pytest.raises(ValueError, match='hidden'):
        HyperZZWMixer(8, global_hidden=0)
