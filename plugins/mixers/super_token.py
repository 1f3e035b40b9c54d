"""Super token attention (STA) of STViT: "Vision Transformer with Super Token Sampling" (Huang et
al., CVPR 2023, arXiv 2211.11167).

Three steps (the paper's super token attention section):

1. Super token sampling by sparse association: the map is cut into a grid of ``h x w`` cells; a
   super token starts as the mean of its cell. Each pixel is softly assigned to the 9 super tokens
   of the 3x3 neighbourhood around its cell, ``Q = softmax_9(X S^T / sqrt(C))``; ``n_iter``
   rounds update ``S = Q^T X`` normalised by the column sums of Q. As in STViT's code, the
   association is computed without gradient (it is a clustering step); gradients flow through X.
2. Multi-head self-attention among the super tokens (``O(M^2)`` for ``M = N / (h w)`` of them).
3. Token upsampling: each pixel becomes ``Q`` times the refined super tokens around it.

Candidates outside the grid take part in the softmax with zero features, exactly as the zero
padding of STViT's unfold does, and contribute nothing to step 1's sums nor to step 3.
Any H, W: the map is zero-padded to cell multiples (as STViT does) and cropped at the end.
``stoken_size=1`` is plain global MHSA (STViT's stages 3-4).
Cost: ``O(9 N C)`` for association and upsampling, ``O(M^2 C)`` for the attention.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS

def gather_3x3(s: torch.Tensor) -> torch.Tensor:
    """(B, C, hh, ww) -> (B, C, 9, hh * ww): the 3x3 neighbours of each cell, zeros outside
    (row-major offsets, STViT's unfold order)."""
    B, C = s.shape[:2]
    return F.unfold(s, 3, padding=1).view(B, C, 9, -1)


def scatter_3x3(t: torch.Tensor, hh: int, ww: int) -> torch.Tensor:
    """(B, C, 9, hh * ww) -> (B, C, hh, ww): the adjoint of :func:`gather_3x3` (STViT's fold):
    entry j of cell (y, x) is added to the cell (y + dy_j, x + dx_j), when that cell exists."""
    B, C = t.shape[:2]
    return F.fold(t.reshape(B, C * 9, -1), (hh, ww), 3, padding=1)


class SuperTokenMHSA(nn.Module):
    """STViT's attention among super tokens: 1x1-conv qkv, heads laid out as (heads, 3, d)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        B, C, hh, ww = s.shape
        M = hh * ww
        qkv = self.qkv(s).view(B, self.num_heads, 3, self.head_dim, M)
        q, k, v = qkv.transpose(-2, -1).unbind(2)                           # B h M d
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)    # B h M d
        return self.proj(out.transpose(-2, -1).reshape(B, C, hh, ww))


@MODELS.register_module()
class SuperTokenAttention(nn.Module):
    """STViT's super token attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: heads of the attention among super tokens.
        stoken_size: cell size ``h`` or ``(h, w)`` (STViT-S: 8, 4, 1, 1 per stage).
        n_iter: association rounds (1 in STViT).
        qkv_bias: bias of the super-token attention's qkv (True in the STViT models).
    """

    def __init__(self, dim: int, num_heads: int = 1, stoken_size: Union[int, Sequence[int]] = 8,
                 n_iter: int = 1, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'SuperTokenAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if n_iter < 1:
            raise ValueError(f'SuperTokenAttention: n_iter must be >= 1, got {n_iter}')
        self.dim = dim
        self.num_heads = num_heads
        self.stoken_size = (stoken_size, stoken_size) if isinstance(stoken_size, int) \
            else tuple(stoken_size)
        self.n_iter = n_iter
        self.scale = dim ** -0.5
        self.stoken_refine = SuperTokenMHSA(dim, num_heads, qkv_bias)

    def association(self, pixels: torch.Tensor, stokens: torch.Tensor) -> torch.Tensor:
        """Soft assignment of each pixel to the 3x3 super tokens around its cell.

        pixels: (B, M, h*w, C); stokens: (B, C, hh, ww). Returns (B, M, h*w, 9).
        """
        neigh = gather_3x3(stokens).permute(0, 3, 1, 2)                    # B M C 9
        return (pixels @ neigh * self.scale).softmax(dim=-1)

    def pool(self, pixels: torch.Tensor, assoc: torch.Tensor, hh: int, ww: int,
             assoc_sum: torch.Tensor) -> torch.Tensor:
        """Super tokens as association-weighted means of their pixels: (B, C, hh, ww)."""
        B, M, _, C = pixels.shape
        contrib = (pixels.transpose(-1, -2) @ assoc).permute(0, 2, 3, 1)   # B C 9 M
        return scatter_3x3(contrib, hh, ww) / (assoc_sum + 1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.stoken_size
        if h == 1 and w == 1:
            return self.stoken_refine(x)
        B, C, H0, W0 = x.shape
        pad_b, pad_r = (-H0) % h, (-W0) % w
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        H, W = x.shape[-2:]
        hh, ww = H // h, W // w
        # b c (hh h) (ww w) -> b (hh ww) (h w) c
        pixels = x.view(B, C, hh, h, ww, w).permute(0, 2, 4, 3, 5, 1).reshape(B, hh * ww, h * w, C)
        with torch.no_grad():
            stokens = F.adaptive_avg_pool2d(x, (hh, ww))
            for it in range(self.n_iter):
                assoc = self.association(pixels, stokens)                  # B M hw 9
                assoc_sum = scatter_3x3(assoc.sum(2).transpose(1, 2).unsqueeze(1), hh, ww)
                if it < self.n_iter - 1:
                    stokens = self.pool(pixels, assoc, hh, ww, assoc_sum)
        stokens = self.pool(pixels, assoc, hh, ww, assoc_sum)              # with gradient
        stokens = self.stoken_refine(stokens)
        neigh = gather_3x3(stokens).permute(0, 3, 1, 2)                    # B M C 9
        out = neigh @ assoc.transpose(-1, -2)                              # B M C hw
        # b (hh ww) c (h w) -> b c (hh h) (ww w)
        out = out.view(B, hh, ww, C, h, w).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        if pad_b or pad_r:
            out = out[:, :, :H0, :W0]
        return out

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, stoken_size={self.stoken_size}, '
                f'n_iter={self.n_iter}')
