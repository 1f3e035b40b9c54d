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
from torch.autograd.function import once_differentiable

from ..ops.joint_attention import joint_softmax_attention, merge_padded_windows, padded_windows
from ..ops.utils import consume_saved, to_pair
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


# heads processed together: as many as keep one chunk's logits within this many elements (all
# heads on small maps, where few large products beat many small ones; one head at a time on large
# maps, where the chunk's logits, their softmax and the gathered neighbours would dominate memory)
_CHUNK_ELEMS = 1 << 21


def _head_chunks(heads: int, per_head: int):
    """Slices of the heads processed together, ``per_head`` logits each."""
    size = max(1, min(heads, _CHUNK_ELEMS // max(1, per_head)))
    return [slice(h, min(h + size, heads)) for h in range(0, heads, size)]


def _neighbours(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The tokens of each window's neighbouring windows ``index (nW, M)``:
    ``(B, h, nW, L, d) -> (B, h, nW, M L, d)``."""
    b, nh, nw, length, d = t.shape
    return t.index_select(2, index.flatten()).view(b, nh, nw, -1, d)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``(B, h, nW, L, n) -> (B, h, nW L, n)``: the queries of all windows as one matrix."""
    return t.reshape(t.shape[0], t.shape[1], -1, t.shape[-1])


def _joint_logits(q, kw, core_k, index, bias):
    """Logits ``(B, h, nW, L, M L + nW)`` of the queries against the raw keys of the
    neighbouring windows and against the core keys, plus the ``bias`` (0 seen / -inf not) where
    given."""
    b, nh, nw, length, d = q.shape
    keys = _neighbours(kw, index).transpose(-1, -2)
    core = core_k.transpose(-1, -2)
    if torch.jit.is_tracing():  # the FLOP counter's matmul handle takes no out= argument
        logits = torch.cat([q @ keys, (_rows(q) @ core).view(b, nh, nw, length, nw)], -1)
    else:  # the products written in place: no concatenated copy of the logits
        m = keys.shape[-1]
        logits = q.new_empty(b, nh, nw, length, m + nw)
        torch.matmul(q, keys, out=logits[..., :m])
        torch.matmul(_rows(q), core, out=logits[..., m:].view(b, nh, nw * length, nw))
    return logits if bias is None else logits.add_(bias)


def _joint_values(p, vw, core_v, index):
    """``p [V_local; V_core]`` for probabilities ``(B, h, nW, L, M L + nW)``."""
    m = p.shape[-1] - vw.shape[2]
    out = p[..., :m] @ _neighbours(vw, index)
    return out.add_((_rows(p[..., m:]) @ core_v).view(out.shape))


def _local_core_forward(qw, kw, vw, core_k, core_v, index, bias, scale):
    """One softmax over the raw tokens of each window's ``M`` neighbouring windows and the core
    tokens of its far windows (the official ``pooling_attention_wo_cache``'s one SDPA over
    ``[core tokens; tokens]``), as plain tensor operations (no gradients kept).

    ``qw, kw, vw: (B, h, nW, L, d)``; ``core_k, core_v: (B, h, nW, d)``; ``index (nW, M)``: the
    neighbour windows; ``bias (nW, 1, M L + nW)``: 0 where a query of the window sees the key,
    -inf where not. Returns the output and the probabilities ``(B, h', nW, L, M L + nW)`` of
    each chunk of ``h'`` heads."""
    b, nh, nw, length, d = qw.shape
    q = qw * scale
    probs, outs = [], []  # per chunk of heads
    for hs in _head_chunks(nh, nw * length * bias.shape[-1]):
        probs.append(torch.softmax(_joint_logits(q[:, hs], kw[:, hs], core_k[:, hs], index,
                                                 bias), -1))
        outs.append(_joint_values(probs[-1], vw[:, hs], core_v[:, hs], index))
    return (outs[0] if len(outs) == 1 else torch.cat(outs, 1)), probs


class _LocalCoreAttention(torch.autograd.Function):
    """:func:`_local_core_forward` with a hand-written backward that keeps the probabilities and
    the windows only: the neighbours' keys and values are gathered again (a chunk of heads at a
    time) and their gradients scattered back (``index_add``), where autograd would keep the
    ``M``-fold gathered keys and values, the logits, their softmax and its slices."""

    @staticmethod
    def forward(ctx, qw, kw, vw, core_k, core_v, index, bias, scale):
        out, probs = _local_core_forward(qw, kw, vw, core_k, core_v, index, bias, scale)
        ctx.save_for_backward(qw, kw, vw, core_k, core_v, index, out)
        ctx.probs, ctx.scale = probs, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        probs = consume_saved(ctx, 'probs', 'CoreContextAwareAttention')  # freed chunk by chunk
        scale = ctx.scale
        qw, kw, vw, core_k, core_v, index, out = ctx.saved_tensors
        b, nh, nw, length, d = qw.shape
        m = probs[0].shape[-1] - nw
        d_out = d_out.contiguous()
        # softmax backward: d logit = p (dp - sum_j p_j dp_j), and sum_j p_j dp_j = d_out . out
        rowdot = (d_out * out).sum(-1, keepdim=True)                           # B h nW L 1
        d_q, d_k, d_v = torch.empty_like(qw), torch.zeros_like(kw), torch.zeros_like(vw)
        d_core_k, d_core_v = torch.empty_like(core_k), torch.empty_like(core_v)
        where = index.flatten()
        for hs in _head_chunks(nh, probs[0][0, 0].numel()):
            g, p, q = d_out[:, hs], probs.pop(0), qw[:, hs]
            d_v[:, hs].index_add_(2, where, (p[..., :m].transpose(-1, -2) @ g).view(
                b, -1, len(where), length, d))
            d_core_v[:, hs] = _rows(p[..., m:]).transpose(-1, -2) @ _rows(g)
            d_logit = _joint_logits(g, vw[:, hs], core_v[:, hs], index, None)  # dp
            d_logit = d_logit.sub_(rowdot[:, hs]).mul_(p).mul_(scale)
            del p
            d_q[:, hs] = _joint_values(d_logit, kw[:, hs], core_k[:, hs], index)
            d_k[:, hs].index_add_(2, where, (d_logit[..., :m].transpose(-1, -2) @ q).view(
                b, -1, len(where), length, d))
            d_core_k[:, hs] = _rows(d_logit[..., m:]).transpose(-1, -2) @ _rows(q)
        return d_q, d_k, d_v, d_core_k, d_core_v, None, None, None


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
        grid = (-(-h // self.group_size[0]), -(-w // self.group_size[1]))
        index, exists, far = (t.to(x.device) for t in _window_neighbours(grid, self.local_radius))
        # 0 / -inf per window: its queries see the real tokens of its M neighbouring windows on
        # the grid raw, and the far windows through their core tokens
        seen = torch.cat([(valid[index] & exists[..., None]).view(len(index), -1), far], -1)
        bias = torch.zeros(seen.shape, dtype=qw.dtype, device=x.device).masked_fill_(
            ~seen, float('-inf'))[:, None]                                    # nW 1 M L + nW
        args = (qw, kw, vw, core_k, core_v, index, bias, self.head_dim ** -0.5)
        # a tracer (FLOP count) records the plain operations
        out = _local_core_forward(*args)[0] if torch.jit.is_tracing() else \
            _LocalCoreAttention.apply(*args)
        out = merge_padded_windows(out, self.group_size, (h, w))             # B heads H W d
        out = self.proj_drop(self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)))
        return out.permute(0, 3, 1, 2)
