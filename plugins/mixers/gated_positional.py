"""Gated positional self-attention (GPSA) of ConViT: "ConViT: Improving Vision Transformers with
Soft Convolutional Inductive Biases" (d'Ascoli et al., ICML 2021, arXiv 2103.10697).

Each head mixes a content attention and a purely positional attention with a learned gate (the GPSA
equation): ``A = (1 - sigmoid(l)) softmax(Q K^T / sqrt(d)) + sigmoid(l) softmax(v_pos^T r)``, where
``r_ij = (dx, dy, dx^2 + dy^2)`` is the relative position of key j seen from query i and each row of
A is renormalised to sum 1. The locality initialisation (the paper's "adaptive attention span" /
locality strength) sets ``v_pos`` so that head h looks at a fixed offset of a ``sqrt(heads) x
sqrt(heads)`` kernel, and ``W_v`` to the identity.

What differs from timm: relative positions come from the real ``H x W`` grid (timm takes
``sqrt(N)`` and is wrong for non-square maps). The positional logits are a sum of a function of dx
and one of dy (the pos_proj bias cancels in the softmax), so the positional attention factorises
into ``P_y (x) P_x``: it is applied along rows and columns in ``O(N (H + W))`` instead of the
``B x heads x N x N`` tensor of timm. The content term is ``F.scaled_dot_product_attention``.
Cost: ``O(N^2 d)`` time per head (global content attention), ``O(N (H + W) d)`` for the
positional part; no size constraint.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS


def relative_position_features(H: int, W: int, device=None, dtype=None) -> torch.Tensor:
    """ConViT's ``r_ij = (dx, dy, dx^2 + dy^2)`` for all pairs of a row-major ``H x W`` grid.

    Returns (H*W, H*W, 3); ``dx = col_j - col_i``, ``dy = row_j - row_i`` (timm's order).
    Meant for references and small maps; the mixer never builds it.
    """
    rows = torch.arange(H, device=device, dtype=torch.float32).repeat_interleave(W)
    cols = torch.arange(W, device=device, dtype=torch.float32).repeat(H)
    dx = cols[None, :] - cols[:, None]
    dy = rows[None, :] - rows[:, None]
    return torch.stack([dx, dy, dx ** 2 + dy ** 2], dim=-1).to(dtype or torch.float32)


@MODELS.register_module()
class GatedPositionalAttention(nn.Module):
    """GPSA on a ``(B, C, H, W)`` map; parameter names match timm's ``GPSA`` and ConViT's.

    Args:
        dim: channels C.
        num_heads: heads; the locality init covers ``int(sqrt(heads))^2`` of them (as ConViT).
        qkv_bias: bias of the qk and v projections (False in ConViT).
        locality_strength: alpha of the locality init (1 in ConViT).
        use_local_init: apply the locality init at construction (ConViT does, for every GPSA).
    """

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = False,
                 locality_strength: float = 1.0, use_local_init: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'GatedPositionalAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.locality_strength = locality_strength
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.gating_param = nn.Parameter(torch.ones(num_heads))
        if use_local_init:
            self.local_init()

    @torch.no_grad()
    def local_init(self) -> None:
        """ConViT's locality init: head (h1, h2) of a k x k kernel, k = int(sqrt(heads)), peaks at
        offset ``(dy, dx) = (h1 - c, h2 - c)``: weights ``(2 (h2 - c), 2 (h1 - c), -1) * alpha``."""
        self.v.weight.copy_(torch.eye(self.dim))
        k = int(self.num_heads ** 0.5)
        center = (k - 1) / 2 if k % 2 == 0 else k // 2
        for h1 in range(k):
            for h2 in range(k):
                head = h1 + k * h2
                self.pos_proj.weight[head, 2] = -1
                self.pos_proj.weight[head, 1] = 2 * (h1 - center)
                self.pos_proj.weight[head, 0] = 2 * (h2 - center)
        self.pos_proj.weight.mul_(self.locality_strength)

    def axis_attention(self, length: int, coeff: torch.Tensor, quad: torch.Tensor,
                       const: torch.Tensor = None) -> torch.Tensor:
        """softmax over j of ``coeff * (j - i) + quad * (j - i)^2 (+ const)`` per head:
        (heads, L, L)."""
        idx = torch.arange(length, device=coeff.device, dtype=coeff.dtype)
        d = idx[None, :] - idx[:, None]                                    # L L
        logits = coeff[:, None, None] * d + quad[:, None, None] * d * d
        if const is not None:
            logits = logits + const[:, None, None]
        return logits.softmax(dim=-1)

    def positional_attention(self, H: int, W: int):
        """The two factors ``P_y`` (heads, H, H) and ``P_x`` (heads, W, W) of softmax(v_pos^T r).
        The ``pos_proj`` bias is a per-head constant of the logits, which the softmax cancels (as
        in the dense form); it is added to the row logits so that it still has its (zero)
        gradient: a parameter without one makes DistributedDataParallel fail."""
        w = self.pos_proj.weight.float()                                   # heads 3
        bias = None if self.pos_proj.bias is None else self.pos_proj.bias.float()
        p_y = self.axis_attention(H, w[:, 1], w[:, 2], bias)
        p_x = self.axis_attention(W, w[:, 0], w[:, 2])
        return p_y, p_x

    def attention_macs(self, x: torch.Tensor) -> int:
        """Multiply-adds of the attention itself on ``x`` (see :func:`plugins.utils.flops.
        count_flops`; the analyser does not count the fused content attention): ``q k^T`` and
        ``A v`` of the content term, ``2 N^2 C``, and the separable positional term,
        ``N (H + W) C``."""
        B, C, H, W = x.shape
        N = H * W
        return B * C * (2 * N * N + N * (H + W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        N = H * W
        h, d = self.num_heads, self.head_dim
        tokens = x.flatten(2).transpose(1, 2)                              # B N C
        q, k = self.qk(tokens).view(B, N, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # B h N d
        v = self.v(tokens).view(B, N, h, d).transpose(1, 2)                # B h N d
        content = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        p_y, p_x = self.positional_attention(H, W)
        # positional term, separable: (P_y (x) P_x) v  as  P_y . v . P_x^T on the grid
        vg = v.reshape(B, h, H, W, d).to(p_y.dtype)                        # b h y x d
        pos = torch.einsum('hyY,bhYxd->bhyxd', p_y, vg)
        pos = torch.einsum('hxX,bhyXd->bhyxd', p_x, pos).reshape(B, h, N, d).to(v.dtype)
        gate = torch.sigmoid(self.gating_param).view(1, h, 1, 1).to(v.dtype)
        out = (1.0 - gate) * content + gate * pos
        out = out.transpose(1, 2).reshape(B, N, C)
        out = self.proj(out)
        return out.transpose(1, 2).reshape(B, C, H, W)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, '
                f'locality_strength={self.locality_strength}')
