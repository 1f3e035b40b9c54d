"""Long 2-D convolutions via FFT: the operator of Hyena N-D ("Multi-Dimensional Hyena for Spatial
Inductive Bias", Zimerman & Wolf, AISTATS 2024).

A filter as large as the map, applied causally from the top-left corner, ``y[i, j] = scale * sum_{a
<= i, b <= j} k[a, b] u[i - a, j - b]``, costs ``O(N log N)`` with FFTs (zero-padded to at least
``2H - 1`` x ``2W - 1``, so no wrap-around reaches the kept ``H x W`` block) instead of ``O(N^2)``.
The FFT lengths are rounded up to even 7-smooth sizes (``2 * 2^a 3^b 5^c 7^d``), which the FFT
library transforms fastest. Computed in fp32 whatever the input dtype (as Hyena's code does),
returned in the input dtype. :func:`direct_causal_conv2d` is the ``O(N^2)`` reference."""
import torch
import torch.nn.functional as F


def fast_fft_size(n: int) -> int:
    """The smallest even ``m >= n`` whose only prime factors are 2, 3, 5 and 7 (1 for n <= 1)."""
    if n <= 1:
        return 1
    m = n + (n % 2)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 2


def fft_causal_conv2d(u: torch.Tensor, k: torch.Tensor, scale: float = 1.0,
                      k_spectrum: torch.Tensor = None) -> torch.Tensor:
    """Causal (top-left anchored) per-channel 2-D convolution of ``u`` with a map-sized ``k``.

    Args:
        u: (..., C, H, W).
        k: (C, kh, kw) with kh <= H, kw <= W, broadcast over the leading dims of u.
        scale: multiplies the result (Hyena's ``1 / fft_size`` normalisation goes here).
        k_spectrum: optional precomputed ``kernel_spectrum(k, H, W, scale)`` (then ``k`` and
            ``scale`` are not used again).
    Returns:
        (..., C, H, W), dtype of u.
    """
    H, W = u.shape[-2:]
    size = (fast_fft_size(2 * H - 1), fast_fft_size(2 * W - 1))
    if k_spectrum is None:
        k_spectrum = kernel_spectrum(k, H, W, scale)
    u_f = torch.fft.rfft2(u.float(), s=size)
    y = torch.fft.irfft2(u_f * k_spectrum, s=size)[..., :H, :W]
    return y.to(u.dtype)


def kernel_spectrum(k: torch.Tensor, H: int, W: int, scale: float = 1.0) -> torch.Tensor:
    """``scale * rfft2(k)`` at the FFT size :func:`fft_causal_conv2d` uses for ``H x W`` inputs
    (the scale is applied to the spectrum, which is shared by the batch, not to the output)."""
    size = (fast_fft_size(2 * H - 1), fast_fft_size(2 * W - 1))
    k_f = torch.fft.rfft2(k.float(), s=size)
    return k_f * scale if scale != 1.0 else k_f


def direct_causal_conv2d(u: torch.Tensor, k: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The same convolution by ``F.conv2d`` (``O(N kh kw)``): the reference of the FFT path."""
    *lead, C, H, W = u.shape
    kh, kw = k.shape[-2:]
    x = F.pad(u.reshape(-1, C, H, W), (kw - 1, 0, kh - 1, 0))
    y = F.conv2d(x, k.flip(-2, -1).unsqueeze(1).to(u.dtype), groups=C)
    return (y * scale).reshape(*lead, C, H, W)
