"""LaMamba: local attention + Mamba, from "LaMamba-Diff: Linear-Time High-Fidelity Diffusion Models
Based on Local Attention and Mamba" (Fu et al., arXiv 2408.02615).

A Mamba (SS2D selective scan) branch compresses the global context into its state and loses the
fine local dependencies; a local (Swin window) self-attention branch restores them (the paper's
LaMamba block). In the official block the two run one after the other, each with its own
pre-norm and residual: ``x = x + SS2D(LN(x))``, then ``x = x + WA(LN(x))`` (then an MLP; the
diffusion conditioning is left out here). As a mixer, with ``s = SS2D(x)``:
``out = s + WA(LN(x + s))``, so that a host block's residual ``x + out`` is that composition.
Window attention is Swin's (relative position bias, optional shift with Swin's mask); the map is
padded to window multiples and padded keys are masked; on maps smaller than the window the
window shrinks to the map (as LaMamba's code does when the resolution is below the window).
Cost: linear in tokens: SS2D ``O(N d_state d_inner)`` plus ``O(N w^2 d)`` for the windows.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn

from ..ops.utils import to_pair
from ..ops.window import window_attention_2d
from ..registry import MODELS
from .ss2d import SS2DMixer


class LocalWindowAttention(nn.Module):
    """Swin W-MSA / SW-MSA with relative position bias, on a ``(B, C, H, W)`` map."""

    def __init__(self, dim: int, num_heads: int, window_size=8, shift_size=0,
                 qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = to_pair(window_size, 'window_size')
        self.shift_size = to_pair(shift_size, 'shift_size')
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        (wh, ww), (sh, sw) = self.window_size, self.shift_size
        # maps smaller than a window: one window as large as the map, no shift (LaMamba's rule)
        win = (min(wh, H), min(ww, W))
        shift = (sh if H > wh else 0, sw if W > ww else 0)
        table = self.relative_position_bias_table
        if win != (wh, ww):   # the sub-table of the offsets a smaller window can have
            idx_y = torch.arange(wh - win[0], wh + win[0] - 1, device=x.device)
            idx_x = torch.arange(ww - win[1], ww + win[1] - 1, device=x.device)
            table = table.view(2 * wh - 1, 2 * ww - 1, -1)[idx_y][:, idx_x].reshape(
                -1, self.num_heads)
        qkv = self.qkv(x.permute(0, 2, 3, 1))                              # B H W 3C
        q, k, v = qkv.view(B, H, W, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
        out = window_attention_2d(q, k, v, win, shift, rpb_table=table)    # B h H W d
        out = self.proj(out.permute(0, 2, 3, 1, 4).reshape(B, H, W, C))
        return out.permute(0, 3, 1, 2)


@MODELS.register_module()
class LaMambaMixer(nn.Module):
    """SS2D then Swin window attention, as in LaMamba, on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: heads of the window attention.
        window_size: window (8 in LaMamba-Diff).
        shift_size: Swin shift (0, or window // 2 in alternate blocks).
        d_state, ssm_ratio, act: of the SS2D branch (16, 2, 'silu' as LaMamba's VMamba SS2D).
        qkv_bias: of the window attention (True).
    """

    def __init__(self, dim: int, num_heads: int = 4, window_size: Union[int, Sequence[int]] = 8,
                 shift_size: Union[int, Sequence[int]] = 0, d_state: int = 16,
                 ssm_ratio: float = 2.0, act: str = 'silu', qkv_bias: bool = True,
                 chunk_size: int = 32):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'LaMambaMixer: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.ssm = SS2DMixer(dim, d_state=d_state, ssm_ratio=ssm_ratio, act=act,
                             chunk_size=chunk_size)
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = LocalWindowAttention(dim, num_heads, window_size, shift_size, qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.ssm(x)
        h = self.norm_attn((x + s).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return s + self.attn(h)
