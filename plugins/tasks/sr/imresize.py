"""Bicubic resizing as MATLAB's ``imresize`` does it: the degradation of the SR literature.

The LR images of DIV2K, Set5, Set14, B100, Urban100 and Manga109 were made with MATLAB's
``imresize(img, 1/scale, 'bicubic')``: Keys' cubic kernel with a = -0.5, the kernel stretched by
``1/scale`` when shrinking (anti-aliasing), symmetric (mirror) extension at the borders, height
first and then width. OpenCV's and PIL's bicubic differ from it (no anti-aliasing, other borders),
which costs several tenths of a dB on the benchmarks; this module reimplements MATLAB's.

Difference from MATLAB: on uint8 images MATLAB rounds to uint8 between the two passes; we keep
float64 between the passes and round once at the end (as BasicSR's Python port does). The two
agree to within one grey level.
"""
import math
from typing import Tuple

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_weights(in_len: int, out_len: int, scale: float,
                   antialias: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Weights (out_len, taps) and input indices (out_len, taps) of one dimension.

    Output pixel ``x`` (1-based) sits at input coordinate ``u = x / scale + (1 - 1 / scale) / 2``,
    so that pixel edges map onto pixel edges. Out-of-range indices are mirrored (MATLAB's
    symmetric extension: ... 2 1 1 2 ... n n n-1 ...).
    """
    width = 4.0 / scale if (scale < 1 and antialias) else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None]  # 1-based input indices
    dist = u[:, None] - idx
    if scale < 1 and antialias:
        weights = scale * cubic(dist * scale)
    else:
        weights = cubic(dist)
    weights /= weights.sum(1, keepdims=True)
    keep = np.any(weights != 0, axis=0)  # columns that are zero everywhere contribute nothing
    weights, idx = weights[:, keep], idx[:, keep]
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    return weights, idx


def _resize_dim(img: np.ndarray, axis: int, out_len: int, scale: float,
                antialias: bool) -> np.ndarray:
    weights, idx = resize_weights(img.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(img, axis, 0)  # (L, ...)
    gathered = moved[idx]  # (out, taps, ...)
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * w).sum(1), 0, axis)


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` image by ``scale`` as MATLAB's bicubic imresize.

    The output is ``ceil(H * scale) x ceil(W * scale)``. A uint8 image comes back as uint8
    (rounded, clipped); a float image comes back as float64, neither rounded nor clipped.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f'imresize takes an (H, W) or (H, W, C) image, got shape {img.shape}')
    if scale <= 0:
        raise ValueError(f'scale must be positive, got {scale}')
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    out_h = int(math.ceil(img.shape[0] * scale))
    out_w = int(math.ceil(img.shape[1] * scale))
    out = _resize_dim(out, 0, out_h, scale, antialias)  # height first, as MATLAB for equal scales
    out = _resize_dim(out, 1, out_w, scale, antialias)
    if is_uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def bicubic_degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of the SR benchmarks: crop HR to a multiple of ``scale``, shrink by 1/scale."""
    h, w = hr.shape[:2]
    hr = hr[:h - h % scale, :w - w % scale]
    return imresize(hr, 1.0 / scale)
