"""Tiled inference: run an SR network on overlapping LR tiles and stitch the SR tiles.

Large test images (Urban100, Manga109, 2K photographs) do not fit in memory in one pass of an
attention network. Tiles of ``tile`` LR pixels overlap by ``overlap`` pixels; where tiles overlap
their SR outputs are either

- averaged (``blend='average'``), the scheme of TLC (Chu et al., "Improving Image Restoration by
  Revisiting Global Information Aggregation", ECCV 2022) that DLGSANet uses at test time: every
  output pixel is the mean of the tiles that cover it, so tile borders leave no seams; or
- taken from the tile whose interior they lie in (``blend='crop'``): each tile owns the pixels up
  to the middle of its overlaps, so a network whose receptive field is within ``overlap / 2``
  gives exactly its whole-image output.

The tile grid is TLC's: ``n = ceil(L / tile)`` ... positions evenly spaced with the last tile flush
with the border (``grid_positions``).
"""
import math
from typing import Callable, List

import torch


def grid_positions(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of the tiles along one dimension: stride ``tile - overlap``, the last tile
    moved back to end at the border. One tile when ``tile >= length``."""
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f'tile overlap must be in [0, tile), got overlap={overlap}, tile={tile}')
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def _owned_ranges(starts: List[int], tile: int, length: int):
    """[begin, end) each tile owns in 'crop' blending: boundaries at the middles of overlaps."""
    bounds = [0]
    for prev, cur in zip(starts[:-1], starts[1:]):
        bounds.append((cur + min(prev + tile, length)) // 2)
    bounds.append(length)
    return list(zip(bounds[:-1], bounds[1:]))


def tiled_inference(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int,
                    tile: int, overlap: int = 16, blend: str = 'average') -> torch.Tensor:
    """``fn`` applied to ``x`` (B, C, h, w) tile by tile; returns (B, C', h * scale, w * scale)."""
    if blend not in ('average', 'crop'):
        raise ValueError(f"blend must be 'average' or 'crop', got {blend!r}")
    b, _, h, w = x.shape
    tile_h, tile_w = min(tile, h), min(tile, w)
    rows = grid_positions(h, tile_h, min(overlap, tile_h - 1))
    cols = grid_positions(w, tile_w, min(overlap, tile_w - 1))
    if len(rows) == 1 and len(cols) == 1:
        return fn(x)
    out = None
    weight = x.new_zeros(1, 1, h * scale, w * scale)
    row_own = _owned_ranges(rows, tile_h, h)
    col_own = _owned_ranges(cols, tile_w, w)
    for top, (own_t, own_b) in zip(rows, row_own):
        for left, (own_l, own_r) in zip(cols, col_own):
            y = fn(x[:, :, top:top + tile_h, left:left + tile_w])
            if out is None:
                out = x.new_zeros(b, y.shape[1], h * scale, w * scale)
            if blend == 'average':
                out[:, :, top * scale:(top + tile_h) * scale,
                    left * scale:(left + tile_w) * scale] += y
                weight[:, :, top * scale:(top + tile_h) * scale,
                       left * scale:(left + tile_w) * scale] += 1
            else:
                out[:, :, own_t * scale:own_b * scale, own_l * scale:own_r * scale] = y[
                    :, :, (own_t - top) * scale:(own_b - top) * scale,
                    (own_l - left) * scale:(own_r - left) * scale]
    return out / weight if blend == 'average' else out
