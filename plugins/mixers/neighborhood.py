"""Neighborhood attention mixer (NAT / DiNAT).

Papers: Hassani et al., "Neighborhood Attention Transformer" (arXiv 2204.07143, Sec. 3.1,
Eq. 2-3) and Hassani & Shi, "Dilated Neighborhood Attention Transformer" (arXiv 2209.15001,
Sec. 3.1). Each token attends to its ``k x k`` nearest neighbours (``k x k`` tokens spread by
``dilation`` in DiNAT), with a learned relative position bias ``B`` of ``(2k-1)^2`` entries per
head. Cost: ``O(H W k^2 C)`` time, ``O(H W k^2 heads)`` memory.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import trunc_normal_

from ..ops.neighborhood import neighborhood_attention_2d
from ..ops.utils import to_pair
from ..registry import MODELS


def clamp_dilation(size: int, kernel: int, dilation: int) -> int:
    """Largest dilation ``<= dilation`` with ``kernel * dilation <= size`` (at least 1).

    DiNAT's detection configs use dilations up to 28 at stride 4; on smaller inputs this keeps the
    pattern valid: each dilation group still holds a full window wherever the map allows one.
    (The official code zero-pads the map up to ``kernel * dilation`` instead.)
    """
    return max(1, min(dilation, size // kernel))


@MODELS.register_module()
class NeighborhoodAttention2d(nn.Module):
    """Multi-head 2-D neighborhood attention on a ``(B, C, H, W)`` map.

    Parameter names (``qkv``, ``rpb``, ``proj``) are those of the NAT / DiNAT checkpoints.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        kernel_size: window side ``k``.
        dilation: DiNAT dilation.
        small_map: what happens on a map shorter than ``k * dilation`` (never an error):
            ``'pad'`` (the official NAT / DiNAT releases, NATTEN 0.14 / 0.15): the (normalised)
            input is zero-padded at the bottom / right to ``k * dilation`` before ``qkv``, so
            padded tokens, carrying the qkv bias, fall inside real queries' windows, and the
            output is cropped back; ``'clamp'``: the dilation is clamped per axis to
            ``max(1, size // k)`` (see :func:`clamp_dilation`), every window holding real tokens
            only, and a map smaller than the kernel attends over the whole axis.
        stride: GNA stride (1 = NAT).
        rel_pos_bias: learn the ``(heads, 2k-1, 2k-1)`` relative position bias (NAT Eq. 2).
        qkv_bias, qk_scale, attn_drop (unsupported > 0, kept for config compatibility), proj_drop.
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 7, dilation: int = 1,
                 stride: int = 1, rel_pos_bias: bool = True, qkv_bias: bool = True,
                 qk_scale=None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 small_map: str = 'pad'):
        super().__init__()
        if small_map not in ('pad', 'clamp'):
            raise ValueError(f"NeighborhoodAttention2d: small_map must be 'pad' or 'clamp', got "
                             f'{small_map!r}')
        self.small_map = small_map
        if dim % num_heads:
            raise ValueError(f'NeighborhoodAttention2d: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if attn_drop:
            raise ValueError('NeighborhoodAttention2d: attn_drop > 0 is not supported '
                             '(NATTEN dropped it too); use proj_drop')
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.kernel_size = to_pair(kernel_size, 'kernel_size')
        self.dilation = to_pair(dilation, 'dilation')
        self.stride = to_pair(stride, 'stride')
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if rel_pos_bias:
            kh, kw = self.kernel_size
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kh - 1, 2 * kw - 1))
            trunc_normal_(self.rpb, std=0.02, a=-2.0, b=2.0)
        else:
            self.register_parameter('rpb', None)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def attention_macs(self, x: torch.Tensor) -> int:
        """Multiply-adds of the neighborhood products on ``x`` as the NAT papers count them:
        ``k x k`` keys per (real) query, for q.k and a.v; with ``small_map='clamp'`` fewer on an
        axis shorter than the kernel (see :func:`plugins.utils.flops.count_flops`)."""
        b, c, h, w = x.shape
        (kh, kw) = self.kernel_size
        if self.small_map == 'clamp':
            kh, kw = min(kh, h), min(kw, w)
        return 2 * b * h * w * kh * kw * c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        if self.small_map == 'pad':
            dil = self.dilation
            pad_h, pad_w = max(0, kh * dh - height), max(0, kw * dw - width)
            if pad_h or pad_w:  # (F.pad copies the map even when it pads nothing)
                x = F.pad(x, (0, pad_w, 0, pad_h))
        else:
            dil = (clamp_dilation(height, kh, dh), clamp_dilation(width, kw, dw))
        b, c, h, w = x.shape
        # tokens as rows (B*H*W, C): a transposed view for B = 1, so that the projection is one
        # addmm (bias fused) on it rather than a matmul of the 4-D permuted map plus a bias pass
        qkv = self.qkv(x.permute(0, 2, 3, 1).reshape(b * h * w, c))
        qkv = qkv.view(b, h, w, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.unbind(0)  # B heads H W d
        out = neighborhood_attention_2d(q, k, v, self.kernel_size, dil, self.stride, rpb=self.rpb,
                                        scale=self.scale)
        out = out[:, :, :height, :width].permute(0, 2, 3, 1, 4).reshape(b, height, width, c)
        return self.proj_drop(self.proj(out)).permute(0, 3, 1, 2)
