"""Key-driven grouped-query attention (KDGQA, DGQA, PGQA): query heads are allocated to the key /
value groups in proportion to the groups' key norms.
Paper: Khan et al., "Beyond Uniform Query Distribution: Key-Driven Grouped Query Attention"
(arXiv 2408.08454). Facts from its code (``modules/attention/{kdgqa,dgqa,pgqa}.py``): ``G =
num_kv_heads`` key/value heads (default ``H // 2``); ``q``, ``k``, ``v``, ``proj`` linears; the
allocation ``a_g`` (query heads of group ``g``, consecutive heads, ``sum a_g = H``) is

* KDGQA: ``n_g = ||K_g||_F``, min-max normalised, ``a_g = round(n_g / sum n * H)``, the sum fixed
  by -1 at the argmax / +1 at the argmin;
* DGQA: from a cache of the norms, updated every ``window_size`` training steps: 'diff' uses
  ``|cache - n_g|``, 'ema' uses ``beta n_g + (1 - beta) cache`` (``beta = 0.9``);
* PGQA: uniform groups, and Gaussian noise with each output row's mean and std subtracted from the
  attention output.

**Batch independence and determinism** (the paper's code sums the norms over the batch and, for
DGQA, refreshes the cache and fixes the sum at random indices even in eval). Here:

* the allocation is computed **per image** from that image's own keys (and, for DGQA, the cache),
  in training and in eval, so an image's output never depends on the other images of its batch;
  for a batch of one it equals the paper's rule;
* the DGQA cache is a buffer updated only in training (every ``window_size`` forwards, from the
  batch mean of the per-image norms: 'diff' stores the latest norms, 'ema' the exponential average
  with ``beta``; the released code's ``(cache + norms) / window_size`` grows without bound at
  ``window_size = 1``); eval reads it and never writes it;
* ties and the sum fix-up are resolved by ``argmax`` / ``argmin`` (first index), never at random;
* PGQA's noise is drawn only in training; eval subtracts its expectation, each row's mean, so that
  eval is deterministic and matches training on average.

A group can receive no query head (the min-max normalisation gives the smallest norm 0). Equal
norms (e.g. one group) fall back to uniform weights instead of 0 / 0. The allocation is discrete:
no gradient flows through it. Cost: that of global attention, ``O(N^2 C)`` on SDPA, with the key
and value heads gathered per query head.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS

VARIANTS = ('kdgqa', 'dgqa_diff', 'dgqa_ema', 'pgqa', 'gqa')


def proportional_allocation(weights: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``round(w / sum w * H)`` per row, fixed to sum to ``H`` by -1 at the argmax / +1 at the
    argmin, repeated (KDGQA's rule, one row per image). ``weights``: ``(B, G)`` >= 0; rows that sum
    to 0 get uniform weights. Returns ``(B, G)`` int64."""
    w = weights.detach().double()
    total = w.sum(1, keepdim=True)
    w = torch.where(total > 0, w, torch.ones_like(w))
    a = torch.round(w / w.sum(1, keepdim=True) * num_heads).long()
    rows = torch.arange(a.shape[0], device=a.device)
    for _ in range(num_heads + a.shape[1]):
        excess = a.sum(1) - num_heads
        if not bool(excess.any()):
            break
        a[rows, a.argmax(1)] -= (excess > 0).long()
        a[rows, a.argmin(1)] += (excess < 0).long()
    return a


def heads_to_groups(allocation: torch.Tensor) -> torch.Tensor:
    """``(B, G)`` head counts -> ``(B, H)`` group of each query head (consecutive heads per group,
    ``repeat_interleave(arange(G), a)`` per row)."""
    ends = allocation.cumsum(1)                                             # B G
    heads = torch.arange(int(allocation[0].sum()), device=allocation.device)
    return (heads[None, :, None] >= ends[:, None, :]).sum(-1)              # B H


@MODELS.register_module()
class KeyDrivenGQA(nn.Module):
    """Grouped-query attention with key-driven query allocation on ``(B, C, H, W)``.

    Args:
        dim, num_heads: channels and query heads.
        num_kv_heads: key/value groups ``G`` (default ``max(1, num_heads // 2)``).
        variant: 'kdgqa', 'dgqa_diff', 'dgqa_ema', 'pgqa' or 'gqa' (uniform, the baseline).
        window_size: DGQA: update the cache every this many training forwards.
        ema_beta: DGQA-EMA's weight of the current norms (0.9).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, num_kv_heads: Optional[int] = None,
                 variant: str = 'kdgqa', window_size: int = 1, ema_beta: float = 0.9,
                 qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'KeyDrivenGQA: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if variant not in VARIANTS:
            raise ValueError(f'KeyDrivenGQA: variant must be one of {VARIANTS}, got {variant!r}')
        groups = max(1, num_heads // 2) if num_kv_heads is None else num_kv_heads
        if not 1 <= groups <= num_heads:
            raise ValueError(f'KeyDrivenGQA: num_kv_heads must be in [1, num_heads={num_heads}], '
                             f'got {groups}')
        if variant in ('pgqa', 'gqa') and num_heads % groups:
            raise ValueError(f'KeyDrivenGQA: uniform groups ({variant}) need num_heads '
                             f'({num_heads}) divisible by num_kv_heads ({groups})')
        if window_size < 1:
            raise ValueError(f'KeyDrivenGQA: window_size must be >= 1, got {window_size}')
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, groups, dim // num_heads
        self.variant, self.window_size, self.ema_beta = variant, window_size, ema_beta
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, groups * self.head_dim, bias=qkv_bias)
        self.v = nn.Linear(dim, groups * self.head_dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if variant.startswith('dgqa'):
            self.register_buffer('cache', torch.zeros(groups))
            self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def allocation(self, k: torch.Tensor) -> torch.Tensor:
        """Query heads per group for each image: ``k (B, G, N, d) -> (B, G)`` int64."""
        b = k.shape[0]
        if self.variant in ('pgqa', 'gqa'):
            return torch.full((b, self.num_kv_heads), self.num_heads // self.num_kv_heads,
                              dtype=torch.long, device=k.device)
        norms = torch.linalg.vector_norm(k.detach().flatten(2), dim=-1)    # B G
        if self.variant == 'kdgqa':
            lo, hi = norms.min(1, keepdim=True).values, norms.max(1, keepdim=True).values
            weights = torch.where(hi > lo, (norms - lo) / (hi - lo).clamp_min(1e-30),
                                  torch.ones_like(norms))
        elif self.variant == 'dgqa_diff':
            weights = (self.cache - norms).abs()
        else:
            weights = self.ema_beta * norms + (1 - self.ema_beta) * self.cache
        if self.training and self.variant.startswith('dgqa'):
            self._update_cache(norms.mean(0))
        return proportional_allocation(weights, self.num_heads)

    @torch.no_grad()
    def _update_cache(self, norms: torch.Tensor) -> None:
        if int(self.steps) % self.window_size == 0:
            if self.variant == 'dgqa_diff':
                self.cache.copy_(norms)
            else:
                self.cache.mul_(1 - self.ema_beta).add_(self.ema_beta * norms)
        self.steps += 1

    def _pgqa(self, out: torch.Tensor) -> torch.Tensor:
        """PGQA: subtract noise with each (image, head) output row's mean and std (training), or
        its expectation, the row mean (eval)."""
        b, nh, n, d = out.shape
        rows = out.reshape(b, nh, n * d)
        mean = rows.mean(-1, keepdim=True)
        if not self.training:
            return (rows - mean).view_as(out)
        noise = torch.rand(nh, n * d, device=out.device, dtype=out.dtype)
        local = torch.arange(nh, device=out.device) % (nh // self.num_kv_heads)
        noise[torch.arange(nh, device=out.device), local] = 0                # "diagonal" zeroed
        noise = (noise - noise.mean(-1, keepdim=True)) / noise.std(-1, keepdim=True)
        return (rows - (noise * rows.std(-1, keepdim=True) + mean)).view_as(out)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                allocation: torch.Tensor) -> torch.Tensor:
        """SDPA of every query head against its group's key / value head (``a_g`` consecutive
        query heads per group, Sec. 3 of the paper). Uniform allocations (always for 'gqa',
        'pgqa' and one group) let SDPA read each key / value head in place for its ``H / G``
        query heads; others gather a key / value head per query head (a copy, and a scatter in
        the backward: 0.4 of 10 ms at 28x28, C = 64)."""
        h, g = self.num_heads, self.num_kv_heads
        if h % g == 0 and bool((allocation == h // g).all()):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        group = heads_to_groups(allocation)                                   # B H
        index = group[:, :, None, None].expand(-1, -1, q.shape[2], self.head_dim)
        return F.scaled_dot_product_attention(q, k.gather(1, index), v.gather(1, index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        t = x.flatten(2).transpose(1, 2)                                      # B N C
        q = self.q(t).view(b, n, self.num_heads, -1).transpose(1, 2)         # B H N d
        k = self.k(t).view(b, n, self.num_kv_heads, -1).transpose(1, 2)      # B G N d
        v = self.v(t).view(b, n, self.num_kv_heads, -1).transpose(1, 2)
        out = self._attend(q, k, v, self.allocation(k))
        if self.variant == 'pgqa':
            out = self._pgqa(out)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)
