"""Benchmark case of the HyperZ.Z.W mixer, beside the direct computation of the same operator: the
global branch (a kernel as large as the map) by ``F.conv2d`` instead of FFT, ``O(N^2)`` per
channel. The official ``matmul(W . Z, Z)`` needs square maps equal to the kernel size and computes
another product, so it cannot run beside ours."""
import torch

from plugins.mixers.hyperzzw import HyperZZWMixer
from plugins.ops.fft_conv import direct_conv2d_same

from . import MixerCase


def direct_formulation(m: HyperZZWMixer):
    def run(x):
        h, w = x.shape[-2:]
        branches = [direct_conv2d_same(x, m.global_hyper_kernel(h, w, x) * x)]
        branches += [direct_conv2d_same(x, local(x)) for local in m.local_kernels]
        y = m.bottleneck(torch.cat(branches, 1).permute(0, 2, 3, 1))
        return y.permute(0, 3, 1, 2)
    return run


CASES = [
    MixerCase('HyperZZWMixer', 'HyperZ.Z.W (2401.17948)',
              lambda dim, heads: HyperZZWMixer(dim, heads), 'linear',
              'direct (non-FFT) global convolution', direct_formulation,
              note='O(N log N) global branch; the peer is O(N^2) per channel'),
]
