"""Enhanced linear global attention of L2ViT: "The Linear Attention Resurrection in Vision
Transformer" (Zheng, arXiv 2501.16182), with its local concentration module (LCM).

The global branch (the paper's enhanced linear global attention) is ReLU-kernel linear attention
over the whole map: each head scales its output by a learnable temperature (initialised to
``d^-1/2``), and the normaliser ``phi(q).sum(phi(k))`` is clamped below at 100, which the paper
reports keeps training stable. Linear attention spreads its weights thinly; the LCM (local
concentration module) concentrates them again with two 7x7 depth-wise convolutions (``conv - GELU -
BN - conv``) after a LayerNorm, added residually.

As a mixer: ``a = LGA(x)``, ``out = a + LCM(LN(a))``. (In L2ViT's block the LCM acts on the
residual stream ``x + a``, which a mixer does not see; a backbone that wants the exact block
calls :meth:`attention` and :attr:`lcm` itself.)
Cost: ``O(N d^2)`` per head plus ``O(N C k^2)`` for the LCM: linear in tokens, any H, W.
Parameter names: ``qkv``, ``temperature``, ``proj`` as L2ViT's ``attn.*``; ``lcm_norm`` and
``lcm.{conv1,bn,conv2}`` are its ``norm3`` and ``local_mp.*``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.depthwise_conv import depthwise_conv2d
from ..ops.linear_attention import relu_linear_attention
from ..registry import MODELS


class LocalConcentrationModule(nn.Module):
    """L2ViT's LCM: depth-wise k x k conv, GELU, BatchNorm, depth-wise k x k conv."""

    def __init__(self, dim: int, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.act = nn.GELU()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(self.bn(self.act(depthwise_conv2d(x, self.conv1))), self.conv2)


@MODELS.register_module()
class EnhancedLinearAttention(nn.Module):
    """L2ViT's linear global attention plus LCM on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: heads.
        qkv_bias: bias of the qkv projection (True in L2ViT's blocks).
        denom_min: the clamp of the normaliser (100 in L2ViT).
        lcm_kernel_size: kernel of the LCM's depth-wise convolutions (7).
        with_lcm: False gives the plain linear global attention.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 denom_min: float = 100.0, lcm_kernel_size: int = 7, with_lcm: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'EnhancedLinearAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.denom_min = denom_min
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1) * self.head_dim ** -0.5)
        self.proj = nn.Linear(dim, dim)
        self.with_lcm = with_lcm
        if with_lcm:
            self.lcm_norm = nn.LayerNorm(dim)
            self.lcm = LocalConcentrationModule(dim, lcm_kernel_size)

    def _qkv(self, tokens: torch.Tensor):
        """``q, k, v``, each ``(B, heads, N, d)``, from ``(B, N, C)`` tokens."""
        B, N, C = tokens.shape
        h, d = self.num_heads, self.head_dim
        if not torch.is_grad_enabled():
            return self.qkv(tokens).view(B, N, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        # under autograd, v apart from q, k: backward keeps ReLU(q), ReLU(k) and v, and a v
        # sliced from one qkv output would keep all three projections alive with it (2 N C more)
        w, b = self.qkv.weight, self.qkv.bias
        qk = F.linear(tokens, w[:2 * C], None if b is None else b[:2 * C])
        v = F.linear(tokens, w[2 * C:], None if b is None else b[2 * C:])
        q, k = qk.view(B, N, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v.view(B, N, h, d).transpose(1, 2)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The linear global attention alone, ``(B, C, H, W) -> (B, C, H, W)``."""
        B, C, H, W = x.shape
        N = H * W
        q, k, v = self._qkv(x.flatten(2).transpose(1, 2))
        out = relu_linear_attention(q, k, v, self.temperature, self.denom_min)   # B h N d
        out = self.proj(out.transpose(1, 2).reshape(B, N, C))
        return out.transpose(1, 2).reshape(B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        if not self.with_lcm:
            return a
        normed = self.lcm_norm(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return a + self.lcm(normed)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, num_heads={self.num_heads}, denom_min={self.denom_min}'
