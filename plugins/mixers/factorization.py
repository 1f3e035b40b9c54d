"""Factorization self-attention (FaSA) of FaViT: "Factorization Vision Transformer: Modeling Long
Range Dependency with Local Window Cost" (Qin et al., IEEE TNNLS).

The channels are split in the ratio ``mul`` (``[2, 7, 7]``, or ``[1, 7]`` when ``sr_ratio == 1``)
into groups that each attend to a different factorised set of keys (the paper's FaSA section):

* group 0, one head: all queries attend to the map reduced by a strided ``sr x sr`` conv and a
  LayerNorm (global, coarse), with a 3x3 depth-wise conv added to its values;
* groups 1.., ``num_heads`` heads each: a depth-wise-separable conv makes K/V features; the map is
  cut into ``k x k`` windows of dilation 1 (group 1) and ``sr`` (group 2), with window stride
  ``dilation * (k - 1) + 1``; the ``k^2`` same-offset pixels of all windows are pooled into one
  token, so every query attends to ``k^2`` tokens that summarise the whole map at mixed
  granularity (the "sparse sub-attention matrices" of the abstract). A linear, a kv linear and a
  3x3 depth-wise conv over the ``k x k`` token grid follow.

The pooling is that of FaViT's code (adaptive average pooling of the flattened ``(windows, d)``
features to ``d`` values), kept exactly so that the released weights mean the same here.
Any H, W: as the official code, the strided ``sr x sr`` reduction drops the rows and columns
left over beyond a multiple of ``sr`` (``sr_remainder='drop'``; ``'pad'`` zero-pads them into a
last reduced row / column instead); a map smaller than ``sr``, where the official conv has no
output, is zero-padded to one cell. The reflection padding to window-stride multiples folds back
as often as needed, so maps smaller than the pad (where ``nn.ReflectionPad2d`` fails) work.
Cost: ``O(N N / sr^2)`` for group 0 (``O(N^2)`` when ``sr = 1``, FaViT's last stage), ``O(N k^2)``
per local group; parameter names match FaViT's ``Attention``.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.global_attention import few_key_attention
from ..ops.reflect_pad import reflect_pad_2d
from ..ops.utils import pad_to_multiple
from ..registry import MODELS


class DepthwiseSeparableConv(nn.Module):
    """3x3 depth-wise conv then 1x1 conv (FaViT's ``DEPTHWISECONV``: the local K/V features)."""

    def __init__(self, channels: int):
        super().__init__()
        self.depth_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.point_conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


def factorized_tokens(x: torch.Tensor, num_heads: int, kernel_size: int,
                      dilation: int) -> torch.Tensor:
    """Pool the ``k^2`` same-offset pixels of all dilated windows into ``k^2`` tokens.

    x: (B, C, H, W), already padded to multiples of the window stride. Returns
    (B, heads, k^2, C / heads), FaViT's unfold + adaptive pooling of the flattened
    ``(windows, C / heads)`` features.
    """
    B, C = x.shape[:2]
    k2 = kernel_size ** 2
    stride = dilation * (kernel_size - 1) + 1
    cols = F.unfold(x, kernel_size, dilation=dilation, stride=stride)      # B (C k2) P
    P = cols.shape[-1]
    d = C // num_heads
    # b (h d k2) P -> b h k2 (P d), then mean over consecutive runs of P values
    cols = cols.view(B, num_heads, d, k2, P).permute(0, 1, 3, 4, 2).reshape(B, num_heads, k2, d, P)
    return cols.mean(dim=-1)


@MODELS.register_module()
class FactorizationAttention(nn.Module):
    """FaViT's factorization self-attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; must be divisible by ``sum(mul)`` and each local group by ``num_heads``.
        num_heads: heads of the local groups (group 0 has one head, as FaViT).
        sr_ratio: reduction of the global group and dilation of the second local group
            (FaViT-B0..B3: 8, 4, 2, 1 per stage).
        window_size: k of the local groups (7).
        qkv_bias: bias of the q / kv projections (True in the FaViT models).
        mul: channel ratio of the groups; default ``[2, 7, 7]`` for ``sr_ratio > 1``, else
            ``[1, 7]``.
        sr_remainder: ``'drop'`` (official) or ``'pad'``: the rows / columns beyond a multiple
            of ``sr_ratio`` in the global group's reduction.
    """

    def __init__(self, dim: int, num_heads: int = 1, sr_ratio: int = 8, window_size: int = 7,
                 qkv_bias: bool = True, mul: Optional[Sequence[int]] = None,
                 sr_remainder: str = 'drop'):
        super().__init__()
        if sr_remainder not in ('drop', 'pad'):
            raise ValueError(f"FactorizationAttention: sr_remainder must be 'drop' or 'pad', "
                             f'got {sr_remainder!r}')
        self.sr_remainder = sr_remainder
        mul = list(mul) if mul is not None else ([2, 7, 7] if sr_ratio > 1 else [1, 7])
        if dim % sum(mul):
            raise ValueError(f'FactorizationAttention: dim ({dim}) must be divisible by sum(mul) '
                             f'= {sum(mul)} (mul={mul})')
        unit = dim // sum(mul)
        self.single_dim = [unit * m for m in mul]
        for s in self.single_dim[1:]:
            if s % num_heads:
                raise ValueError(f'FactorizationAttention: local group width {s} must be '
                                 f'divisible by num_heads ({num_heads})')
        self.dim = dim
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.window_size = window_size
        self.mul = mul
        c0 = self.single_dim[0]
        self.scales = [c0 ** -0.5] + [(s // num_heads) ** -0.5 for s in self.single_dim[1:]]
        self.dilations = [1] + [sr_ratio] * (len(mul) - 2)
        self.strides = [d * (window_size - 1) + 1 for d in self.dilations]

        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_g = nn.Linear(c0, c0 * 2, bias=qkv_bias)
        self.kv_l = DepthwiseSeparableConv(dim - c0)
        self.sr = nn.Conv2d(c0, c0, kernel_size=sr_ratio, stride=sr_ratio)
        self.norm = nn.LayerNorm(c0)
        self.local_conv_g = nn.Conv2d(c0, c0, 3, padding=1, groups=c0)
        self.fcs = nn.ModuleList()
        self.single_heads = nn.ModuleList()
        self.local_convs = nn.ModuleList()
        for s in self.single_dim[1:]:
            d = s // num_heads
            self.fcs.append(nn.Linear(d, d, bias=qkv_bias))
            self.single_heads.append(nn.Linear(d, 2 * d, bias=qkv_bias))
            self.local_convs.append(nn.Conv2d(s, s, 3, padding=1, groups=s))
        self.proj = nn.Linear(dim, dim)

    def global_group(self, x_g: torch.Tensor, q_g: torch.Tensor) -> torch.Tensor:
        """Group 0: x_g (B, C0, H, W), q_g (B, 1, N, C0) -> (B, N, C0)."""
        B, c0 = x_g.shape[:2]
        if self.sr_remainder == 'pad' or min(x_g.shape[2:]) < self.sr_ratio:
            x_g, _ = pad_to_multiple(x_g, self.sr_ratio)
        red = self.sr(x_g)                                                  # B C0 Hg Wg
        Hg, Wg = red.shape[-2:]
        kv = self.kv_g(self.norm(red.flatten(2).transpose(1, 2)))           # B Ng 2C0
        k, v = kv.unsqueeze(1).chunk(2, dim=-1)                             # B 1 Ng C0
        v_map = v.transpose(-2, -1).reshape(B, c0, Hg, Wg)
        v = v + self.local_conv_g(v_map).view(B, 1, c0, Hg * Wg).transpose(-2, -1)
        out = few_key_attention(q_g, k, v, scale=self.scales[0])
        return out.squeeze(1)

    def local_group(self, i: int, kv_map: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Local group i (1-based): kv_map (B, C_i, H, W), q (B, heads, N, C_i / heads)."""
        B, ci, H, W = kv_map.shape
        s, k = self.strides[i - 1], self.window_size
        kv_map = reflect_pad_2d(kv_map, 0, (-W) % s, 0, (-H) % s)
        tokens = factorized_tokens(kv_map, self.num_heads, k, self.dilations[i - 1])  # B h k2 d
        kv = self.single_heads[i - 1](self.fcs[i - 1](tokens))
        key, v = kv.chunk(2, dim=-1)
        d = ci // self.num_heads
        v_map = v.transpose(-2, -1).reshape(B, ci, k, k)
        v = v + self.local_convs[i - 1](v_map).view(B, self.num_heads, d, k * k).transpose(-2, -1)
        out = few_key_attention(q, key, v, scale=self.scales[i])   # B h N d
        return out.transpose(1, 2).reshape(B, -1, ci)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        N, h = H * W, self.num_heads
        c0 = self.single_dim[0]
        tokens = x.flatten(2).transpose(1, 2)                               # B N C
        q = self.q(tokens)
        outs = [self.global_group(x[:, :c0], q[..., :c0].unsqueeze(1))]
        # local queries: b n (h d_l) -> b h n d_l, each group takes a slice of every head's d_l
        q_l = q[..., c0:].reshape(B, N, h, -1).transpose(1, 2)
        kv_l = self.kv_l(x[:, c0:])
        q_start = kv_start = 0
        for i, ci in enumerate(self.single_dim[1:], start=1):
            d = ci // h
            outs.append(self.local_group(i, kv_l[:, kv_start:kv_start + ci],
                                         q_l[..., q_start:q_start + d]))
            q_start, kv_start = q_start + d, kv_start + ci
        out = self.proj(torch.cat(outs, dim=-1))
        return out.transpose(1, 2).reshape(B, C, H, W)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, sr_ratio={self.sr_ratio}, '
                f'window_size={self.window_size}, mul={self.mul}')

