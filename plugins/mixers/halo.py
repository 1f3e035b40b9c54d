"""Halo attention mixer (HaloNet: Vaswani et al., "Scaling Local Self-Attention for Parameter
Efficient Visual Backbones", arXiv 2103.12731, Sec. 2.2).

``b x b`` query blocks attend to their block grown by a halo of ``h`` (keys beyond the map are
zeros), with factorised relative position logits. Cost ``O(H W (b+2h)^2 C)``.
"""
import torch
import torch.nn as nn
from torch.nn.init import trunc_normal_

from ..ops.halo import halo_attention_2d
from ..ops.utils import merge_heads, split_heads
from ..registry import MODELS


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _RelPosEmbed(nn.Module):
    """Holds ``height_rel`` / ``width_rel`` under timm's names (``pos_embed.*``)."""

    def __init__(self, win, dim_head, std):
        super().__init__()
        self.height_rel = nn.Parameter(torch.zeros(2 * win - 1, dim_head))
        self.width_rel = nn.Parameter(torch.zeros(2 * win - 1, dim_head))
        trunc_normal_(self.height_rel, std=std)
        trunc_normal_(self.width_rel, std=std)


@MODELS.register_module()
class HaloAttention(nn.Module):
    """Halo attention on a ``(B, C, H, W)`` map, any H, W (padded to block multiples inside).

    Parameters and defaults follow timm's ``HaloAttn`` (stride 1), whose weights load as they are:
    ``q`` and ``kv`` 1x1 convolutions (``kv`` holds ``[k, v]`` per head), ``pos_embed.height_rel``,
    ``pos_embed.width_rel``; no output projection.

    Args:
        dim: channels (in and out); num_heads.
        block_size: ``b``; halo_size: ``h``.
        dim_head: q/k channels per head, default ``make_divisible(dim * qk_ratio, 8) // heads``.
        qk_ratio, qkv_bias, scale_pos_embed: as timm.
        stride: 1, or a divisor of ``block_size`` (timm's ``stride=2``, HaloNet's down-sampling
            blocks): the ``q`` projection is strided, the output is ``ceil(H / stride) x
            ceil(W / stride)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, block_size: int = 8, halo_size: int = 3,
                 dim_head=None, qk_ratio: float = 1.0, qkv_bias: bool = False,
                 scale_pos_embed: bool = False, stride: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'HaloAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.num_heads = num_heads
        self.dim_head_qk = dim_head or _make_divisible(dim * qk_ratio, 8) // num_heads
        self.dim_head_v = dim // num_heads
        if stride < 1 or block_size % stride:
            raise ValueError(f'HaloAttention: stride ({stride}) must divide block_size '
                             f'({block_size})')
        self.block_size, self.halo_size, self.stride = block_size, halo_size, stride
        self.scale = self.dim_head_qk ** -0.5
        self.scale_pos_embed = scale_pos_embed
        qk = num_heads * self.dim_head_qk
        self.q = nn.Conv2d(dim, qk, 1, stride=stride, bias=qkv_bias)
        self.kv = nn.Conv2d(dim, qk + dim, 1, bias=qkv_bias)
        self.pos_embed = _RelPosEmbed(block_size + 2 * halo_size, self.dim_head_qk, self.scale)
        trunc_normal_(self.q.weight, std=dim ** -0.5)
        trunc_normal_(self.kv.weight, std=dim ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        nh, dqk, dv = self.num_heads, self.dim_head_qk, self.dim_head_v
        q = split_heads(self.q(x), nh)
        kv = self.kv(x).view(b, nh, dqk + dv, h, w).permute(0, 1, 3, 4, 2)
        k, v = kv.split([dqk, dv], dim=-1)
        out = halo_attention_2d(q, k, v, self.block_size, self.halo_size,
                                self.pos_embed.height_rel, self.pos_embed.width_rel,
                                scale=self.scale, scale_pos_embed=self.scale_pos_embed,
                                query_stride=self.stride)
        return merge_heads(out)
