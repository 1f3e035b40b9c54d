"""Core-token pooling plus local attention as a 2-D token mixer. Paper: Chen et al., "Core Context
Aware Attention for Long Context Language Modeling" (ICML 2025, arXiv 2412.12465).

Two parts, fused in one softmax:

* globality-pooling attention: the tokens are split into groups of ``g``; each group is
  compressed into one *core token* whose key and value are the group's keys and values weighted
  by ``softmax_j(q_rep . k_j / sqrt(d))`` over the group (the official
  ``fast_calculate_fusion_weights`` / ``_weight_pooling``, with ``q_rep`` the group's last query);
* locality-preserving attention: the raw tokens of a local window.

Official code (chenyaofo/CCA-Attention, ``cca_attn.py``: ``pooling_attention_wo_cache``,
``generate_mask``): SDPA over ``[core tokens; tokens]`` with a mask that lets a query see the core
tokens of the groups that end before its window and the raw tokens of a window of ``s`` tokens
*extended back to a group boundary* (``window_size + remain_num``): core and raw tokens partition
the context exactly.

2-D, non-causal: groups are ``p x p`` windows of the map and ``q_rep`` is the mean of the
window's queries (the "last token" is a causal artefact). The local part keeps the official
alignment to group boundaries: a query sees the raw tokens of its own window and of the
``(2r+1)^2 - 1`` windows around it, and the core tokens of every other window, so again every
token is seen exactly once, either raw or through its core token. Any H, W: the map is
zero-padded to window multiples; padded tokens are masked in the core weights, as raw keys, and
in the query mean.

Cost: ``O(N ((2r+1)^2 p^2 + N / p^2) d)``; logits memory ``O(N ((2r+1)^2 p^2 + N / p^2))``.
"""
import functools

import torch
import torch.nn as nn

from ..ops.joint_attention import joint_softmax_attention, merge_padded_windows, padded_windows
from ..ops.utils import to_pair
from ..registry import MODELS


@functools.lru_cache(maxsize=16)
def _window_neighbours(grid, radius: int):
    """For a ``grid = (rows, cols)`` of windows: the index of every window's ``(2r+1)^2``
    neighbours ``(nW, M)`` (0 where off the grid), which of them exist ``(nW, M)``, and which
    windows are *not* neighbours of each window ``(nW, nW)`` (their core tokens are seen)."""
    gh, gw = grid
    wy, wx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing='ij')
    wy, wx = wy.flatten(), wx.flatten()
    off = torch.arange(-radius, radius + 1)
    ny = wy[:, None, None] + off[None, :, None]
    nx = wx[:, None, None] + off[None, None, :]
    exists = ((ny >= 0) & (ny < gh) & (nx >= 0) & (nx < gw)).reshape(gh * gw, -1)
    index = torch.where(exists, (ny * gw + nx).reshape(gh * gw, -1), 0)
    far = ((wy[:, None] - wy[None]).abs() > radius) | ((wx[:, None] - wx[None]).abs() > radius)
    return index, exists, far


@MODELS.register_module()
class CoreContextAwareAttention(nn.Module):
    """CCA-Attention on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        group_size: window side(s) ``p`` of a group (4: 16 tokens, the official ``p_size=16``).
        local_radius: ``r``: raw tokens of the ``(2r+1) x (2r+1)`` windows around the query's.
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, group_size=4, local_radius: int = 1,
                 qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'CoreContextAwareAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.group_size = to_pair(group_size, 'group_size')
        if min(self.group_size) < 1:
            raise ValueError(f'CoreContextAwareAttention: group_size must be >= 1, '
                             f'got {self.group_size}')
        if local_radius < 0:
            raise ValueError(f'CoreContextAwareAttention: local_radius must be >= 0, '
                             f'got {local_radius}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.local_radius = local_radius
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def core_tokens(self, qw, kw, vw, valid):
        """Globality-pooling: ``(B, heads, nW, L, d)`` windows and their validity
        ``(nW, L)`` -> core keys and values ``(B, heads, nW, d)``."""
        counts = valid.sum(-1).to(qw.dtype)[:, None]                          # nW 1
        q_rep = (qw * valid[..., None]).sum(-2, keepdim=True) / counts[..., None]
        cores = joint_softmax_attention(q_rep, [(kw, torch.cat([kw, vw], -1), valid[:, None, :])],
                                        self.head_dim ** -0.5)[..., 0, :]
        return cores.split(self.head_dim, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                     # B heads H W d
        (qw, valid), (kw, _), (vw, _) = (padded_windows(t, self.group_size) for t in (q, k, v))
        core_k, core_v = self.core_tokens(qw, kw, vw, valid)
        # raw tokens of the neighbouring windows: (B, heads, nW, M L, d) and their validity
        grid = (-(-h // self.group_size[0]), -(-w // self.group_size[1]))
        index, exists, far = (t.to(x.device) for t in _window_neighbours(grid, self.local_radius))
        nw, length = valid.shape
        local_k, local_v = (t.index_select(2, index.flatten()).view(
            b, self.num_heads, nw, -1, self.head_dim) for t in (kw, vw))
        local_valid = (valid[index] & exists[..., None]).view(nw, 1, -1)
        out = joint_softmax_attention(qw, [(local_k, local_v, local_valid),
                                           (core_k.unsqueeze(2), core_v.unsqueeze(2),
                                            far[:, None, :])], self.head_dim ** -0.5)
        out = merge_padded_windows(out, self.group_size, (h, w))             # B heads H W d
        out = self.proj_drop(self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)))
        return out.permute(0, 3, 1, 2)
