"""Long 2-D convolutions via FFT: the operator of Hyena N-D ("Multi-Dimensional Hyena for Spatial
Inductive Bias", Zimerman & Wolf, AISTATS 2024).

A filter as large as the map, applied causally from the top-left corner, ``y[i, j] = scale * sum_{a
<= i, b <= j} k[a, b] u[i - a, j - b]``, costs ``O(N log N)`` with FFTs (zero-padded to at least
``2H - 1`` x ``2W - 1``, so no wrap-around reaches the kept ``H x W`` block) instead of ``O(N^2)``.
The FFT lengths are rounded up to even 7-smooth sizes (``2 * 2^a 3^b 5^c 7^d``), which the FFT
library transforms fastest. Computed in fp32 whatever the input dtype (as Hyena's code does),
returned in the input dtype. :func:`direct_causal_conv2d` is the ``O(N^2)`` reference.

:func:`fft_conv2d_same` is the centred ("same") depth-wise cross-correlation with a kernel per
sample and channel, as large as the map or larger, the global branch of HyperZ.Z.W (Zhang, arXiv
2401.17948); :func:`direct_conv2d_same` is its ``F.conv2d`` reference."""
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


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


def _same_pads(kh: int, kw: int):
    """``padding='same'`` of ``F.conv2d``: ``(k - 1) // 2`` before, the rest after."""
    return (kh - 1) // 2, (kw - 1) // 2


def _same_fft_size(n: int, k: int) -> int:
    """FFT length of a 'same' correlation of ``n`` samples with a ``k``-tap kernel, ``p = (k - 1)
    // 2``. The full linear result has ``n + k - 1`` entries: ``k - 1 - p`` dropped, ``n`` kept,
    ``p`` dropped. A circular transform of length ``L`` folds the entries past ``L`` onto the
    start, harmless while all of them are dropped ones and land on dropped ones: ``L >= n +
    max(p, k - 1 - p)``, about ``1.5 n`` instead of ``2 n`` for a map-sized kernel (and ``L >=
    k``, so that the kernel fits). The same length serves both gradients: ``du``, a convolution
    of ``dy`` with the kernel (``p`` dropped, ``n`` kept, ``k - 1 - p`` dropped), and ``dk``, the
    correlation of ``dy`` with ``u`` (lags ``-(n - 1) .. n - 1``, kept ``-p .. k - 1 - p``)."""
    p = (k - 1) // 2
    return fast_fft_size(max(n + max(p, k - 1 - p), k))


def _wrapped_lags(r: torch.Tensor, p: int, k: int, dim: int) -> torch.Tensor:
    """Lags ``-p .. k - 1 - p`` of a circular correlation along ``dim`` (negative ones wrapped
    to the end), in order."""
    n = r.shape[dim]
    return torch.cat((r.narrow(dim, n - p, p), r.narrow(dim, 0, k - p)), dim)


def _times(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b``, into ``a`` where it has the broadcast shape (``a`` is a temporary spectrum)."""
    return a.mul_(b) if torch.broadcast_shapes(a.shape, b.shape) == a.shape else a * b


class _FFTConv2dSame(torch.autograd.Function):
    """:func:`fft_conv2d_same` with its own backward: autograd of the FFT chain would keep both
    zero-padded inputs, both spectra and the padded output (about ``12 x`` the input at a
    map-sized kernel); this keeps only ``u`` and ``k`` and recomputes their spectra in backward
    (two more real FFTs): ``du = dy (*) k`` (a convolution, kept lags ``[p, p + H)``) and
    ``dk = dy (x) u`` (a correlation, ``conj(DY) U``, kept lags ``[-p, k - p)``)."""

    @staticmethod
    def forward(ctx, u, k):
        H, W = u.shape[-2:]
        kh, kw = k.shape[-2:]
        ph, pw = _same_pads(kh, kw)
        size = (_same_fft_size(H, kh), _same_fft_size(W, kw))
        acc = torch.promote_types(u.dtype, torch.float32)  # fp32, or fp64 for fp64 inputs
        ctx.save_for_backward(u, k)
        ctx.size, ctx.acc = size, acc
        # correlation = convolution with the flipped kernel; output i sits at i + kh - 1 - ph
        spec = _times(torch.fft.rfft2(u.to(acc), s=size),
                      torch.fft.rfft2(k.flip(-2, -1).to(acc), s=size))
        y = torch.fft.irfft2(spec, s=size)
        del spec
        # copied out, so that the view does not keep the padded buffer alive
        return y[..., kh - 1 - ph:kh - 1 - ph + H, kw - 1 - pw:kw - 1 - pw + W].to(
            u.dtype).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        u, k = ctx.saved_tensors
        size, acc = ctx.size, ctx.acc
        H, W = u.shape[-2:]
        kh, kw = k.shape[-2:]
        ph, pw = _same_pads(kh, kw)
        grad_f = torch.fft.rfft2(grad.to(acc), s=size)
        grad_u = grad_k = None
        if ctx.needs_input_grad[0]:
            full = torch.fft.irfft2(_times(torch.fft.rfft2(k.to(acc), s=size), grad_f), s=size)
            grad_u = full[..., ph:ph + H, pw:pw + W].to(u.dtype).contiguous()
            del full
        if ctx.needs_input_grad[1]:
            spec = _times(torch.fft.rfft2(u.to(acc), s=size), grad_f.conj())
            del grad_f
            r = torch.fft.irfft2(spec, s=size)
            del spec
            r = _wrapped_lags(_wrapped_lags(r, ph, kh, -2), pw, kw, -1)
            grad_k = r.sum_to_size(k.shape).to(k.dtype)
        return grad_u, grad_k


def fft_conv2d_same(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``y[b, c, i, j] = sum_{a, e} k[b, c, a, e] u[b, c, i + a - p_h, j + e - p_w]`` (zero outside
    the map), ``p = (k - 1) // 2``: ``F.conv2d(..., padding='same', groups=C)`` per sample, by FFT.

    Args:
        u: (B, C, H, W).
        k: (B or 1, C, kh, kw) or (C, kh, kw), any size (e.g. the map's own, a global kernel).
    Returns:
        (B, C, H, W), dtype of u; ``O(H W log(H W))`` per channel instead of ``O(H W kh kw)``.
    """
    return _FFTConv2dSame.apply(u, k)


def direct_conv2d_same(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """:func:`fft_conv2d_same` by ``F.conv2d`` (one group per sample and channel)."""
    B, C, H, W = u.shape
    kh, kw = k.shape[-2:]
    ph, pw = _same_pads(kh, kw)
    x = F.pad(u.reshape(1, B * C, H, W), (pw, kw - 1 - pw, ph, kh - 1 - ph))
    weight = k.expand(B, C, kh, kw).reshape(B * C, 1, kh, kw).to(u.dtype)
    return F.conv2d(x, weight, groups=B * C).view(B, C, H, W)
