"""Reflection padding that works for any pad, including pads at least as large as the map.

``nn.ReflectionPad2d`` requires ``pad < size``; on a tiny feature map (a 3x3 map padded to a
multiple of 49, as FaViT's dilated groups need) it raises. Here the indices fold back and forth
across the map (a triangle wave), which equals ``ReflectionPad2d`` whenever that one is defined and
extends it beyond; a dimension of size 1 repeats its only element.
"""
import torch


def reflect_indices(size: int, before: int, after: int, device=None) -> torch.Tensor:
    """Source indices of a reflection-padded dimension: ``size + before + after`` entries."""
    idx = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx < size, idx, period - idx)


def reflect_pad_2d(x: torch.Tensor, left: int = 0, right: int = 0, top: int = 0,
                   bottom: int = 0) -> torch.Tensor:
    """Reflect-pad the last two dimensions of ``x`` by any non-negative amounts (F.pad order)."""
    if min(left, right, top, bottom) < 0:
        raise ValueError(f'reflect_pad_2d: pads must be >= 0, got {(left, right, top, bottom)}')
    H, W = x.shape[-2:]
    if top or bottom:
        x = x.index_select(-2, reflect_indices(H, top, bottom, x.device))
    if left or right:
        x = x.index_select(-1, reflect_indices(W, left, right, x.device))
    return x
