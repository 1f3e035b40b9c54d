"""Window attention mixers: Swin's (shifted) window attention, as used by DaViT and L2ViT, and
HiDiffusion's MSW-MSA.

Papers: Liu et al., "Swin Transformer" (arXiv 2103.14030, Sec. 3.2, Eq. 4); Ding et al., "DaViT"
(arXiv 2204.03645, spatial window attention, no bias, no shift); Zheng et al., "L2ViT" (arXiv
2208.05114, local window attention); Zhang et al., "HiDiffusion" (arXiv 2311.17528, Sec. 3.3).
Cost: ``O(H W wh ww C)`` time, ``O(H W wh ww heads)`` memory.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import trunc_normal_

from ..ops.utils import pad_to_multiple, to_pair
from ..ops.window import (merge_crop_rows, msw_msa_shift, pad_partition_rows, permute_rows,
                          window_bias_terms, window_qkv_rows, window_rows)
from ..registry import MODELS


class _WindowMixerBase(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias, proj_drop):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'{type(self).__name__}: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)


@MODELS.register_module()
class ShiftedWindowAttention(_WindowMixerBase):
    """(Shifted) window multi-head attention on a ``(B, C, H, W)`` map.

    Parameter names (``qkv``, ``proj``, ``relative_position_bias_table``) are Swin's / timm's.

    Args:
        dim, num_heads: channels and heads.
        window_size: window side(s).
        shift_size: cyclic shift (Swin: ``window_size // 2`` in every other block; 0 = W-MSA).
        rel_pos_bias: learn Swin's ``((2wh-1)(2ww-1), heads)`` bias table (False for DaViT).
        mask_padding: False (Swin, DaViT, L2ViT): the input is zero-padded to window multiples
            *before* the projections and padded tokens are attended like any other; True: padded
            keys are masked out.
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int, window_size=7, shift_size=0,
                 rel_pos_bias: bool = True, mask_padding: bool = False, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias, proj_drop)
        self.window_size = to_pair(window_size, 'window_size')
        self.shift_size = to_pair(shift_size, 'shift_size')
        self.mask_padding = mask_padding
        if rel_pos_bias:
            wh, ww = self.window_size
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
            trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            self.register_parameter('relative_position_bias_table', None)

    def _attend(self, rows: torch.Tensor, valid, shift) -> torch.Tensor:
        """Attention inside each window: rows ``(B, nW N, C)`` -> ``(B, nW N, C)``; ``valid``: the
        size whose tokens are attended (the rest is masked padding), None when nothing is biased
        or masked. A function of its own so that q, k, v and the logits are freed when it
        returns."""
        b, _, c = rows.shape
        nh, n = self.num_heads, self.window_size[0] * self.window_size[1]
        nw = rows.shape[1] // n
        qkv = self.qkv(rows).view(b * nw, n, 3, nh, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B nW) heads N d, strided views
        terms = [] if valid is None else [
            t for t in window_bias_terms(valid, self.window_size, shift,
                                         self.relative_position_bias_table, nh,
                                         dtype=q.dtype, device=q.device) if t is not None]
        if b > 1:  # per window: repeat per image
            terms = [t.expand(b, *t.shape).reshape(b * nw, *t.shape[1:]) if t.shape[0] > 1 else t
                     for t in terms]
        if torch.is_grad_enabled() and any(t.requires_grad for t in terms):
            # SDPA has no fused backward for a learned bias: its math fallback computes these
            # products plus a pass for rows a -inf mask would leave empty (none here); the
            # terms are added one by one, in place, never repeated to the logits' size
            attn = torch.matmul(q * self.head_dim ** -0.5, k.transpose(-2, -1))
            for t in terms:
                attn.add_(t)
            attn = attn.softmax(-1)  # the logits are freed here
            out = torch.matmul(attn, v)
            del attn
        else:
            bias = terms[0] + terms[1] if len(terms) == 2 else (terms[0] if terms else None)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B nW) heads N d
        del qkv, q, k, v  # before the output's copy below: autograd keeps its own copies
        return out.transpose(1, 2).reshape(b, nw * n, c)

    def forward(self, x: torch.Tensor, shift_size=None) -> torch.Tensor:
        """``shift_size`` overrides the module's shift for this call (e.g. 0 where the map fits
        in one window: Swin's rule of not shifting a map no larger than the window)."""
        b, c, h, w = x.shape
        wh, ww = self.window_size
        hv, wv = h + (-h) % wh, w + (-w) % ww
        valid = (h, w) if self.mask_padding else (hv, wv)  # keys to keep: real or all tokens
        shift = self.shift_size if shift_size is None else to_pair(shift_size, 'shift_size')
        sh, sw = shift
        if self.relative_position_bias_table is None and not (sh or sw) and (hv, wv) == valid:
            valid = None  # DaViT's windows: no bias, no mask (skips their per-call bookkeeping)
        # roll and partition the input: the projections are per token, so this equals Swin's
        # roll + partition of q, k, v, on C channels instead of 3C. A shifted partition is one
        # row gather (a permutation of the padded map, backward a gather too) in place of two
        # rolls and a copy each way (fwd + bwd, one thread: 56x56 C=64 13.4 -> 12.6 ms, 200x304
        # C=64 312 -> 293 ms; equal at 28x28); an unshifted one of a padded map is one copy
        # each way, padding included (50x76 C=320: 157.6 -> 154.7 ms, 0.6 MB less)
        if sh or sw:
            x, _ = pad_to_multiple(x.permute(0, 2, 3, 1), self.window_size, dims=(1, 2))
            slots, tokens = (t.to(x.device) for t in window_rows((hv, wv), self.window_size,
                                                                  shift))
            rows = permute_rows(x.reshape(b, hv * wv, c), 1, slots, tokens)
        else:
            rows = pad_partition_rows(x, self.window_size)
        out = self._attend(rows, valid, shift)
        out = self.proj(out)
        if self.proj_drop.p:
            out = self.proj_drop(out)
        if sh or sw:
            out = permute_rows(out, 1, tokens, slots).view(b, hv, wv, c)[:, :h, :w]
        else:
            out = merge_crop_rows(out, self.window_size, (h, w))
        return out.permute(0, 3, 1, 2)


@MODELS.register_module()
class ModifiedShiftedWindowAttention(_WindowMixerBase):
    """HiDiffusion's MSW-MSA on a ``(B, C, H, W)`` map: ``num_windows x num_windows`` large
    windows (``ceil(H / n) x ceil(W / n)``; the paper uses 2), cyclically shifted by
    ``step * (window // 4)`` with ``step`` drawn uniformly from {0, 1, 2, 3} at every call (the
    official code draws it per call, i.e. per denoising step), no shifted-window mask: windows wrap
    around. ``forward(x, step=k)`` fixes the step.

    Maps that do not split evenly are zero-padded and padded keys masked (the official code
    resizes the map bicubically instead). Parameter names ``qkv``, ``proj``.
    """

    def __init__(self, dim: int, num_heads: int, num_windows: int = 2, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias, proj_drop)
        self.num_windows = num_windows

    def forward(self, x: torch.Tensor, step: Optional[int] = None) -> torch.Tensor:
        """Project every token, then one row gather rolls, pads and partitions q, k, v into
        contiguous ``(B nW, heads, N, d)`` windows (the projections are per token, so this equals
        the official roll-then-project; SDPA reads that layout fastest), one SDPA over the
        windows, the output projection on window rows, and one row gather puts every token back.
        On maps of whole windows both gathers are permutations, whose backward is a gather too
        (no scatter into zeros)."""
        b, c, h, w = x.shape
        window = (math.ceil(h / self.num_windows), math.ceil(w / self.num_windows))
        if step is None:
            step = int(torch.randint(0, 4, ()))
        shift = msw_msa_shift(window, step)
        n, nh, dev = window[0] * window[1], self.num_heads, x.device
        index, inverse = window_qkv_rows((h, w), window, shift, nh, b)
        # tokens (B H W, C): a transposed view for one image, read in place by the product
        qkv = self.qkv(x.flatten(2).transpose(1, 2).reshape(b * h * w, c))
        rows = permute_rows(qkv.view(-1, self.head_dim), 0, index.to(dev),
                            None if inverse is None else inverse.to(dev))
        q, k, v = rows.view(3, -1, nh, n, self.head_dim).unbind(0)     # (B nW) heads N d
        nw = q.shape[0] // b
        mask = None
        if inverse is None:  # padded keys are masked, per window (repeated per image)
            _, mask = window_bias_terms((h, w), window, shift, None, nh, shifted_mask=False,
                                        dtype=q.dtype, device=dev)
            if b > 1:
                mask = mask.expand(b, *mask.shape).reshape(b * nw, *mask.shape[1:])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, nw * n, c)))
        token_of_slot, slot_of_token = window_rows((h, w), window, shift)
        out = permute_rows(out, 1, slot_of_token.to(dev),
                           None if inverse is None else token_of_slot.to(dev))
        return out.view(b, h, w, c).permute(0, 3, 1, 2)
