"""FFT long convolution against the direct 2-D convolution."""
import pytest
import torch

from plugins.ops.fft_conv import direct_causal_conv2d, fast_fft_size, fft_causal_conv2d


def test_fast_fft_size_is_smallest_even_7_smooth_size():
    assert [fast_fft_size(n) for n in (1, 7, 11, 13, 25, 41, 97, 111, 303)] == \
        [1, 8, 12, 14, 28, 42, 98, 112, 320]


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (1, 9), (16, 16)])
def test_fft_conv_equals_direct_conv(size):
    u = torch.randn(2, 3, *size, dtype=torch.float64)
    k = torch.randn(3, *size, dtype=torch.float64)
    torch.testing.assert_close(fft_causal_conv2d(u, k, 0.3).double(), direct_causal_conv2d(u, k, 0.3),
                               rtol=1e-5, atol=1e-5)


def test_output_is_causal_from_the_top_left():
    u = torch.zeros(1, 1, 6, 7)
    u[0, 0, 3, 4] = 1.0
    y = fft_causal_conv2d(u, torch.rand(1, 6, 7) + 0.1)
    nz = y[0, 0].abs() > 1e-6
    assert nz[3:, 4:].all() and not nz[:3].any() and not nz[:, :4].any()
