"""Channel group attention of DaViT: "DaViT: Dual Attention Vision Transformers" (Ding et al.,
ECCV 2022, arXiv 2204.03645).

The channels are the tokens: each of ``num_heads`` groups of ``C_h = C / num_heads`` channels runs
softmax attention among its channels, with the ``N = H * W`` positions as the feature dimension (the
paper's channel group attention). Every output channel is a mixture over all positions of the map,
so the mixer is global, yet its cost is linear in tokens: ``O(N * C * C_h)`` time, ``O(heads *
C_h^2)`` for the attention maps. No size constraint, no padding."""
import torch
import torch.nn as nn

from ..registry import MODELS


@MODELS.register_module()
class ChannelGroupAttention(nn.Module):
    """DaViT channel group attention on a ``(B, C, H, W)`` map.

    ``version=1`` (DaViT as released): ``A = softmax((K * C_h^-1/2)^T V)`` per group, a
    ``C_h x C_h`` map, then ``out = (A Q^T)^T``. ``version=2`` (the variant of Florence-2's
    DaViT): ``A = softmax((Q * s)^T K)``, ``out = (A V^T)^T``, with ``s = N^-1/2`` when
    ``dynamic_scale`` (the scale follows the number of positions) else ``C_h^-1/2``.

    Parameter names (``qkv``, ``proj``) are those of the official and timm checkpoints.

    Args:
        dim: channels C.
        num_heads: channel groups; C must be divisible by it.
        qkv_bias: bias of the qkv projection (True in the DaViT models).
        version: 1 or 2, see above.
        dynamic_scale: version 2 only.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, version: int = 1,
                 dynamic_scale: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'ChannelGroupAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if version not in (1, 2):
            raise ValueError(f'ChannelGroupAttention: version must be 1 or 2, got {version}')
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.version = version
        self.dynamic_scale = dynamic_scale
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        N = H * W
        tokens = x.flatten(2).transpose(1, 2)                              # B N C
        qkv = self.qkv(tokens).view(B, N, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)                     # each B h C_h N
        if self.version == 1:
            k = k * self.head_dim ** -0.5
            attn = (k @ v.transpose(-1, -2)).softmax(dim=-1)               # B h C_h C_h
            out = attn @ q                                                 # B h C_h N
        else:
            scale = N ** -0.5 if self.dynamic_scale else self.head_dim ** -0.5
            attn = ((q * scale) @ k.transpose(-1, -2)).softmax(dim=-1)
            out = attn @ v
        out = out.reshape(B, C, N).transpose(1, 2)                         # B N C
        out = self.proj(out)
        return out.transpose(1, 2).reshape(B, C, H, W)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, num_heads={self.num_heads}, version={self.version}'
