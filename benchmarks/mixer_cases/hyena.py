"""Benchmark case of the Hyena N-D mixer, with a re-run of the official ``HyenaOperator2d``
forward and its ``fftconv2d`` as written (FFT of size 2H x 2W, the filter spectrum divided by the
FFT size, the unused 1-D ``irfft`` it also computes, then ``irfft2``), run with our weights. The
official code takes square maps of side ``l_max`` only; its normalisation generalises here as ours
(``l_max / (2 H W)``), so that both compute the same function on every grid."""
import torch

from plugins.mixers.hyena import HyenaMixer2d

from . import MixerCase


def _official_fftconv2d(u, k, D, scale):
    H, W = u.shape[-2:]
    size = (2 * H, 2 * W)
    k_f = torch.fft.rfft2(k.float(), s=size) * scale
    u_f = torch.fft.rfft2(u.float(), s=size)
    y = torch.fft.irfft(u_f * k_f, n=size[1], norm='forward')[..., :W]   # computed, then unused
    y = torch.fft.irfft2(u_f * k_f, s=size)[..., :H, :W]
    return (y + u * D.unsqueeze(1).unsqueeze(2)).to(u.dtype)


def hyena_official_formulation(m: HyenaMixer2d):
    def run(x):
        B, C, H, W = x.shape
        u = m.in_proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        uc = m.short_filter(u)
        *xs, v = uc.split(C, dim=1)
        k = m.filter_fn(H, W).permute(2, 0, 1).reshape(m.order - 1, C, H, W)
        bias = m.filter_fn.bias.view(m.order - 1, C)
        for o, x_i in enumerate(reversed(xs[1:])):
            v = _official_fftconv2d(v * x_i, k[o], bias[o], m.fft_scale(H, W))
        y = (v * xs[0]).permute(0, 2, 3, 1)
        return m.out_proj(y).permute(0, 3, 1, 2)
    return run


CASES = [
    MixerCase('HyenaMixer2d', 'Hyena N-D (AISTATS 2024)',
              lambda dim, heads: HyenaMixer2d(dim, heads, l_max=14), 'linear',
              'official HyenaOperator2d / fftconv2d formulation', hyena_official_formulation,
              note='O(N log N) FFT convolution'),
]
