"""Routing attention as a 2-D token mixer. Paper: Roy, Saffar, Vaswani, Grangier,
"Efficient Content-Based Sparse Attention with Routing Transformers" (arXiv 2003.05997).

Queries and keys are routed by online k-means: each of ``c`` clusters (centroids per head, kept
as EMA buffers, not trained by gradient) takes the ``w`` queries and the ``w`` keys closest to its
centroid, and attention runs inside each cluster only (see :mod:`plugins.ops.kmeans_routing` for
the official code's facts). A commitment loss pulls the normalised queries and keys towards their
centroids.

2-D, non-causal: routing is permutation-equivariant, so the map is simply flattened; the causal
mask and the index sort of the language model are dropped, and queries and keys are routed
separately (the official encoder path, ``share_qk=False``; ``share_qk=True`` gives the decoder's
shared query-key space). Membership is the official *balanced* top-``w`` (not exact cluster
masks): a token may sit in 0, 1 or several clusters, and ``w = ceil(N / c)`` by default, so any
H, W works and about every token is routed once. Nothing is padded.

Cost: ``O(N c d)`` routing plus ``O(c w^2 d) = O(N^2 d / c)`` attention (``O(N^1.5 d)`` at
``c = sqrt(N)``); logits memory ``O(N^2 / c)``, never ``N x N``.

Auxiliary loss: during a training forward the mixer sets
``self.auxiliary_losses = {'loss_commitment': commitment_weight * value}`` (replaced at each
forward, empty in eval); the centroids are updated in the same forward (training mode only), so
evaluation neither updates them nor depends on anything but its input. Under activation
checkpointing the recomputed forward updates them a second time (the official code skips the
update while recomputing); under ``torch.distributed`` the update sums the statistics of all
processes, as the official code does across TPU replicas.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.kmeans_routing import commitment_loss, ema_kmeans_update, routed_attention, top_members
from ..registry import MODELS


@MODELS.register_module()
class RoutingAttention(nn.Module):
    """Routing Transformer attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        num_clusters: centroids ``c`` per head (16 in the official PG-19 configs).
        window_size: tokens per cluster ``w``; None = ``ceil(H W / c)`` (clamped to ``H W``).
        share_qk: route and attend with the queries as keys (official decoder); False routes
            queries and keys separately (official encoder self-attention).
        commitment_weight: ``beta`` of the commitment loss (1e-4 officially), applied to the sum
            of the queries' and the keys' losses (the queries' alone with ``share_qk``).
        ema_decay: decay of the centroid moving averages (0.999 officially).
        qk_scale: logit scale of the layer-normalised queries and keys; the official code uses
            none (1.0): its ``d^-0.5`` query scale is undone by the normalisation.
        scatter_eps: added to the membership count when averaging over clusters (1e-2).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, num_clusters: int = 16,
                 window_size: Optional[int] = None, share_qk: bool = False,
                 commitment_weight: float = 1e-4, ema_decay: float = 0.999,
                 qk_scale: float = 1.0, scatter_eps: float = 1e-2, qkv_bias: bool = True,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'RoutingAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if num_clusters < 1:
            raise ValueError(f'RoutingAttention: num_clusters must be >= 1, got {num_clusters}')
        if window_size is not None and window_size < 1:
            raise ValueError(f'RoutingAttention: window_size must be >= 1 or None, '
                             f'got {window_size}')
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f'RoutingAttention: ema_decay must be in [0, 1), got {ema_decay}')
        if commitment_weight < 0:
            raise ValueError(f'RoutingAttention: commitment_weight must be >= 0, '
                             f'got {commitment_weight}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.num_clusters, self.window_size, self.share_qk = num_clusters, window_size, share_qk
        self.commitment_weight, self.ema_decay = commitment_weight, ema_decay
        self.scale, self.scatter_eps = qk_scale, scatter_eps
        self.qkv = nn.Linear(dim, dim * (2 if share_qk else 3), bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        # official initialisation: layer-normalised Gaussian centroids; the EMA starts from one
        # pseudo-item at each centroid (see plugins.ops.kmeans_routing.ema_kmeans_update)
        means = F.layer_norm(torch.randn(num_heads, num_clusters, self.head_dim), (self.head_dim,))
        self.register_buffer('means', means)
        self.register_buffer('ema_count', torch.ones(num_heads, num_clusters))
        self.register_buffer('ema_sum', means.clone())
        self.auxiliary_losses = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, nh, hd = h * w, self.num_heads, self.head_dim
        qkv = self.qkv(x.flatten(2).transpose(1, 2)).view(b, n, -1, nh, hd).permute(2, 0, 3, 1, 4)
        # queries and keys normalised without scale or bias, per head (official layer_norm with
        # scaling=False, epsilon 1e-6); they are routed *and* attended with
        q = F.layer_norm(qkv[0], (hd,), eps=1e-6)
        k = q if self.share_qk else F.layer_norm(qkv[1], (hd,), eps=1e-6)
        v = qkv[-1]
        window = self.window_size or math.ceil(n / self.num_clusters)
        # membership from float32 scores (the centroids' dtype), so that low-precision inputs
        # route as their float32 counterparts do
        q_members = top_members(self._scores(q), window)
        k_members = q_members if self.share_qk else top_members(self._scores(k), window)
        means = self.means.to(q.dtype)
        out = routed_attention(q, k, v, q_members, k_members, self.scale, self.scatter_eps)
        self.auxiliary_losses = {}
        if self.training:
            items = [q] if self.share_qk else [q, k]
            loss = sum(commitment_loss(item, means) for item in items)
            self.auxiliary_losses = {'loss_commitment': self.commitment_weight * loss}
            for item in items:  # after the loss: it used the centroids of this forward
                ema_kmeans_update(item, self.means, self.ema_count, self.ema_sum, self.ema_decay)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """``x . mu^T`` per head, ``(B, heads, N, c)``, in the centroids' precision (also under
        autocast, which would otherwise run the product in its low dtype)."""
        with torch.autocast(x.device.type, enabled=False):
            return torch.einsum('bhnd,hcd->bhnc', x.detach().to(self.means.dtype), self.means)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, num_clusters={self.num_clusters}, '
                f'window_size={self.window_size}, share_qk={self.share_qk}')
