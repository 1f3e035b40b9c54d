"""Dilated depth-wise convolution computed as a plain one on the dilation's phase grids.

A k x k depth-wise conv with dilation d (stride 1, "same" padding) only ever mixes pixels whose
coordinates agree modulo d. Splitting the map into its d x d phase grids (pixel-unshuffle by d),
running the undilated k x k conv on each grid as one batch, and interleaving the results back gives
exactly the dilated conv. On CPU the undilated form is about 2x faster forward+backward for LKA's
7x7, d = 3 conv on stride-4/8 maps (batch 8, torch 2.13, 2 cores: 99 -> 42 ms at 32 x 48 x 48,
47 -> 22 ms at 64 x 24 x 24; even at 160 x 12 x 12); on GPU the library kernel is used as it is.

:func:`depthwise_conv2d` runs a stride-1 'same' depth-wise ``nn.Conv2d`` with a cheaper weight
gradient on CPU (:class:`_DepthwiseConv2d`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def dilated_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias, dilation: int):
    """``F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=C)``.

    Args:
        x: (B, C, H, W).
        weight: (C, 1, k, k) with odd k.
        bias: (C,) or None.
        dilation: d >= 1.
    """
    k = weight.shape[-1]
    if dilation == 1 or x.device.type != 'cpu':
        return F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation,
                        groups=x.shape[1])
    b, c, h, w = x.shape
    d = dilation
    hp, wp = -(-h // d) * d, -(-w // d) * d
    x = F.pad(x, (0, wp - w, 0, hp - h))
    # B C (h d1) (w d2) -> (B d1 d2) C h w : one undilated conv over all d*d phase grids
    grids = x.view(b, c, hp // d, d, wp // d, d).permute(0, 3, 5, 1, 2, 4)
    grids = grids.reshape(b * d * d, c, hp // d, wp // d)
    out = F.conv2d(grids, weight, bias, padding=k // 2, groups=c)
    out = out.view(b, d, d, c, hp // d, wp // d).permute(0, 3, 4, 1, 5, 2).reshape(b, c, hp, wp)
    return out[:, :, :h, :w]


class _DepthwiseConv2d(torch.autograd.Function):
    """Stride-1 depth-wise convolution whose weight gradient is itself a depth-wise convolution,
    ``dW[c] = x_pad[c] (*) dY[c]`` (the output-sized gradient as the kernel, ``padding`` as in the
    forward, so the result is ``k x k``). On CPU, oneDNN computes the weight gradient of a
    channels-last depth-wise ``k > 3`` convolution with its generic kernel in a 16 x 16 padded
    weight layout (a ``C k^2 256``-float buffer, 3 MB at C = 64, k = 7, whatever the map) and the
    bias gradient with it; here the weight gradient runs on its fast depth-wise forward kernel and
    the bias gradient is ``dY`` summed (28x28, C = 64: 1.2 -> 0.5 ms, 3.5 -> 0.8 MB)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        p, channels = ctx.padding, x.shape[1]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            # first, so that its copies of dY (the kernel's layouts) are gone before dX exists
            for b in range(x.shape[0]):  # one image at a time: the kernel is that image's dY
                g = F.conv2d(x[b:b + 1], grad[b].unsqueeze(1), padding=p, groups=channels)
                grad_w = g[0].unsqueeze(1) if grad_w is None else grad_w + g[0].unsqueeze(1)
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [p, p], [1, 1], False, [0, 0], channels,
                [True, False, False])[0]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def depthwise_conv2d(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a stride-1, undilated, 'same'-padded depth-wise ``conv``, with the cheaper
    weight gradient of :class:`_DepthwiseConv2d` on CPU (elsewhere the library's own)."""
    if not torch.is_grad_enabled() or x.device.type != 'cpu':
        return conv(x)
    return _DepthwiseConv2d.apply(x, conv.weight, conv.bias, conv.padding[0])
