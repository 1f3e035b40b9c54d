"""InLine attention: "Bridging the Divide: Reconsidering Softmax and Linear Attention" (Han et al.,
NeurIPS 2024, arXiv 2412.06590).

Linear attention made injective (Eq. 5, the injective normalisation): the normaliser subtracts each
query's mean score instead of dividing by it, so the attention weights of a query sum to 1 without
making different queries collapse onto the same distribution. A local residual restores the local
modelling that linear attention lacks (the paper's local residual): a 3x3 depth-wise convolution of
V whose kernel is predicted per sample from the mean token by two grouped 1x1 convolutions.

Global over the ``H x W`` map, cost ``O(N d^2)`` per head (linear in tokens). The form is the one of
InLine-PVT (which takes any H, W); the Swin variant assumes square windows.
Parameter names (``q``, ``kv``, ``proj``, ``residual``) match InLine-PVT's checkpoints.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.linear_attention import dynamic_depthwise_conv2d, injective_linear_attention
from ..registry import MODELS

_KERNELS = {
    'identity': None,
    'relu': F.relu,
    'leakyrelu': F.leaky_relu,
    'exp': torch.exp,
}


@MODELS.register_module()
class InLineAttention(nn.Module):
    """InLine attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: heads (the residual predictor is grouped by head, as InLine's).
        qkv_bias: bias of the q / kv projections (True in the InLine-PVT models).
        kernel_func: the feature map phi applied to Q and K: 'identity' (InLine's default),
            'relu', 'leakyrelu' or 'exp' (the options of InLine's code).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 kernel_func: str = 'identity'):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'InLineAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if kernel_func not in _KERNELS:
            raise ValueError(f'InLineAttention: kernel_func must be one of {sorted(_KERNELS)}, '
                             f'got {kernel_func!r}')
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.kernel_func = kernel_func
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.residual = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=1, groups=num_heads),
            nn.GELU(),
            nn.Conv1d(dim, dim * 9, kernel_size=1, groups=num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        N, h, d = H * W, self.num_heads, self.head_dim
        tokens = x.flatten(2).transpose(1, 2)                              # B N C
        q = self.q(tokens)
        k, v = self.kv(tokens).chunk(2, dim=-1)
        phi = _KERNELS[self.kernel_func]
        if phi is not None:
            q, k = phi(q), phi(k)
        # local residual kernel from the mean token: B C -> B (C 9) -> B C 3 3
        res_weight = self.residual(tokens.mean(dim=1).unsqueeze(-1)).view(B, C, 3, 3)
        q, k, v = (t.view(B, N, h, d).transpose(1, 2) for t in (q, k, v))   # B h N d
        out = injective_linear_attention(q, k, v, self.scale)              # B h N d
        v_map = v.transpose(-2, -1).reshape(B, C, H, W)
        out = out.transpose(-2, -1).reshape(B, C, H, W)
        out = out + dynamic_depthwise_conv2d(v_map, res_weight)
        out = self.proj(out.flatten(2).transpose(1, 2))
        return out.transpose(1, 2).reshape(B, C, H, W)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, num_heads={self.num_heads}, kernel_func={self.kernel_func!r}'
