"""Recurrence within chunks, attention across chunks, as a 2-D token mixer. Paper: Wei et al.,
"RAT: Bridging RNN Efficiency and Attention Accuracy in Language Modeling" (arXiv 2507.04416).

Facts from the official layer (``src/model/backbone/rat/rat.py`` of the RAT code, MIT): one
projection gives an output gate ``z``, values ``x``, a forget
gate ``g`` and queries / keys shared by ``ngroups`` head groups; ``g = sigmoid(g + b_g)`` with
``b_g`` initialised to ``log U(1, L - 1)``; inside each chunk of ``L`` tokens a gated linear
recurrence ``h_t = g_t h_{t-1} + (1 - g_t) [x_t; k_t]`` (reset at the chunk start) runs on values
and keys alike; the chunk's last state is its summary. A query attends, in one softmax (the
official ``merge_last_token`` log-sum-exp merge), to the summaries of other chunks and to its own
chunk's running state ``h_t``, with RoPE on the chunk positions; ``out = W_o (sigmoid(z) * attn)``.
The layer's input RMSNorm and residual belong to the block, not to a mixer, and are left out.

2-D, non-causal: chunks are ``p x p`` windows of the map; inside a window the recurrence runs in
raster order (row by row, each row left to right), which keeps the paper's within-chunk causal
state; across chunks a query sees the summaries of *all other* windows (the causal paper sees the
earlier ones), plus its own running state. Chunk positions are 2-D: RoPE rotates half of each
head's channels by the window row and half by the window column (the own state shares the query's
position, so its logit is unrotated, as in the paper). Any H, W: the map is zero-padded to window
multiples and padded tokens are skipped by the recurrence (gate 1, input 0), so a window's states
and summary depend on its real tokens only.

Cost: ``O(N C)`` for the scan (one pass over the window slots) plus ``O(N (N / p^2) d)`` for the
attention over summaries; logits memory ``O(N^2 / p^2)`` per head.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..ops.utils import consume_saved, to_pair
from ..registry import MODELS


def rope_2d(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding over 2-D positions (axial RoPE): the first half of the channels
    rotates by ``rows``, the second half by ``cols``, each half as in RoFormer (Su et al., arXiv
    2104.09864) with frequencies ``base^(-2i / (d / 2))``.

    ``x: (..., P, d)`` with ``d % 4 == 0``; ``rows``, ``cols``: ``(P,)`` positions. Negated
    positions give the inverse (transposed) rotation.
    """
    d = x.shape[-1]
    quarter = d // 4
    freq = base ** (-torch.arange(quarter, device=x.device, dtype=x.dtype) / quarter)
    out = []
    for half, pos in zip(x.split(d // 2, dim=-1), (rows, cols)):
        angle = pos.to(x.dtype)[:, None] * freq                               # P d/4
        cos, sin = angle.cos(), angle.sin()
        a, b = half.split(quarter, dim=-1)
        out += [a * cos - b * sin, a * sin + b * cos]
    return torch.cat(out, dim=-1)


class _Layout:
    """Window geometry of one call: a ``(B, H, W, n d)`` map in ``p_h x p_w`` windows on a grid
    of ``rows x cols`` windows (zero padded to window multiples), the slots holding real tokens,
    and the 2-D RoPE of the window positions (``rope``, ``base``)."""

    def __init__(self, size: Tuple[int, int], window: Tuple[int, int], device, rope: bool,
                 base: float):
        self.size, self.window, self.rope, self.base = size, window, rope, base
        self.grid = (-(-size[0] // window[0]), -(-size[1] // window[1]))
        (gh, gw), (wh, ww) = self.grid, window
        self.padded = (gh * wh, gw * ww) != tuple(size)
        rows = torch.arange(gh * wh, device=device) < size[0]
        cols = torch.arange(gw * ww, device=device) < size[1]
        self.valid = (rows[:, None] & cols[None]).view(gh, wh, gw, ww).permute(
            0, 2, 1, 3).reshape(gh * gw, wh * ww)                              # nW L
        pos = torch.arange(gh * gw, device=device)
        self.rows, self.cols = pos // gw, pos % gw

    def split(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """``(B, H, W, n d) -> (B, n, nW, L, d)`` windows in raster order, padding = 0."""
        b, h, w, nd = t.shape
        (gh, gw), (wh, ww) = self.grid, self.window
        if self.padded:
            t = F.pad(t, (0, 0, 0, gw * ww - w, 0, gh * wh - h))
        t = t.view(b, gh, wh, gw, ww, n, nd // n).permute(0, 5, 1, 3, 2, 4, 6)
        return t.reshape(b, n, gh * gw, wh * ww, nd // n)

    def merge(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: ``(B, n, nW, L, d) -> (B, H, W, n d)`` (padding dropped)."""
        b, n, _, _, d = t.shape
        (gh, gw), (wh, ww) = self.grid, self.window
        t = t.view(b, n, gh, gw, wh, ww, d).permute(0, 2, 4, 3, 5, 1, 6)
        return t.reshape(b, gh * wh, gw * ww, n * d)[:, :self.size[0], :self.size[1]]

    def rotate(self, t: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """2-D RoPE by window position of ``(..., nW, d)``; ``inverse``: the transposed rotation
        (for gradients)."""
        sign = -1 if inverse else 1
        return rope_2d(t, sign * self.rows, sign * self.cols, self.base)


def _gated_scan(gate: torch.Tensor, xw: torch.Tensor, kw: torch.Tensor) -> torch.Tensor:
    """All states of ``h_t = g_t h_{t-1} + (1 - g_t) [x_t; k_t]`` (the official ``ascan``, reset
    at the window start) along the window slots, computed in place slot by slot.

    ``gate``, ``xw``: ``(B, heads, nW, L, d)``; ``kw``: ``(B, groups, nW, L, d)``, shared by the
    heads ``i`` with ``i % groups`` = group (the official ``repeat``). Returns ``h``
    ``(B, 2, heads, nW, L, d)`` (values, keys). A sequential pass writes each state once, where a
    log-depth parallel scan keeps ``log2 L`` full-size intermediates."""
    b, nh, nw, length, d = xw.shape
    ng = kw.shape[1]
    h = xw.new_empty(b, 2, nh, nw, length, d)
    hx, hk = h[:, 0], h[:, 1].view(b, nh // ng, ng, nw, length, d)   # heads = (reps, groups)
    gk, k = gate.view(hk.shape), kw.unsqueeze(1)
    torch.mul(xw[..., 0, :], 1 - gate[..., 0, :], out=hx[..., 0, :])
    torch.mul(k[..., 0, :], 1 - gk[..., 0, :], out=hk[..., 0, :])
    for t in range(1, length):  # lerp(u, h, g) = g h + (1 - g) u
        torch.lerp(xw[..., t, :], hx[..., t - 1, :], gate[..., t, :], out=hx[..., t, :])
        torch.lerp(k[..., t, :], hk[..., t - 1, :], gk[..., t, :], out=hk[..., t, :])
    return h


def _group_sum(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, heads, ...) -> (B, groups, ...)``: the gradient of the per-group tensor that heads
    ``i`` with ``i % groups`` = group share."""
    return t.view(t.shape[0], -1, groups, *t.shape[2:]).sum(1)


def _per_head(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, groups, ...) -> (B, heads, ...)``, head ``i`` taking group ``i % groups``."""
    b, ng = t.shape[:2]
    return t.unsqueeze(1).expand(b, heads // ng, *t.shape[1:]).reshape(b, heads, *t.shape[2:])


class _RATCore(torch.autograd.Function):
    """``sigmoid(z) * attn`` from the input projection ``[z, x, g, q, k]``: gated scan inside
    the windows, then one softmax over the other windows' summaries and the own running state.

    A hand-written backward keeps only what the gradients need (gates, windows of values, keys
    and queries, the states, the probabilities, ``sigmoid(z)`` and ``attn``) and frees each
    buffer once used, where autograd would also keep every intermediate of the scan and the
    softmax (several copies of the states and of the logits)."""

    @staticmethod
    def forward(ctx, inp, gate_bias, lay: _Layout, heads: int, groups: int, scale: float):
        # the hand-written backward runs without autocast: so does the forward (in fp32)
        with torch.autocast(inp.device.type, enabled=False):
            y, saved = _RATCore.run(inp, gate_bias, lay, heads, groups, scale)
        ctx.lay, ctx.heads, ctx.groups, ctx.scale = lay, heads, groups, scale
        ctx.inp_dtype = inp.dtype
        c = gate_bias.shape[0]
        ctx.widths, ctx.saved = (c, (inp.shape[-1] - 3 * c) // 2), saved
        return y

    @staticmethod
    def run(inp, gate_bias, lay: _Layout, heads: int, groups: int, scale: float):
        """The forward as plain tensor operations (also what a tracer records): returns
        ``sigmoid(z) * attn`` and the tensors the backward needs."""
        c = gate_bias.shape[0]
        gd = (inp.shape[-1] - 3 * c) // 2
        # one dtype for the in-place scan: under autocast the projection comes in half precision
        # and the gate bias in fp32, and the states run in fp32 as autograd's promotion would
        inp = inp.to(torch.promote_types(inp.dtype, gate_bias.dtype))
        z, xv, g, q, k = inp.split([c, c, c, gd, gd], dim=-1)
        gate = lay.split(torch.sigmoid(g + gate_bias), heads)                 # B h nW L d
        if lay.padded:  # padded slots keep the state: gate 1, input 0
            gate.masked_fill_(~lay.valid[:, :, None], 1)
        xw, qw, kw = lay.split(xv, heads), lay.split(q, groups), lay.split(k, groups)
        h = _gated_scan(gate, xw, kw)
        probs, p_own, out = _RATCore._attend(qw, h, lay, scale)
        s, out = torch.sigmoid(z), lay.merge(out)
        return s * out, dict(s=s, out=out, gate=gate, xw=xw, qw=qw, kw=kw, h=h, probs=probs,
                             p_own=p_own)

    @staticmethod
    def _attend(qw, h, lay, scale):
        """Sec. 3 of the paper: ``softmax([q R_w . R_v sum_k_v (v != w); q . h_k])`` over the
        summaries ``sum_k_v`` (last state) of the other windows and the own state; returns the
        probabilities ``(B, h, nW L, nW)`` (own window 0), the own-state probability
        ``(B, h, nW, L)`` and the output ``(B, h, nW, L, d)``."""
        b, _, nh, nw, length, d = h.shape
        hx, hk = h[:, 0], h[:, 1]
        q_rot, sum_k = qw, hk[..., -1, :]
        if lay.rope:
            q_rot, sum_k = lay.rotate(qw.transpose(2, 3)).transpose(2, 3), lay.rotate(sum_k)
        logits = _per_head(q_rot, nh).reshape(b, nh, nw * length, d) @ sum_k.transpose(-1, -2)
        logits.view(b, nh, nw, length, nw).diagonal(0, 2, 4).fill_(float('-inf'))
        own = (_per_head(qw, nh) * hk).sum(-1).mul_(scale)                      # B h nW L
        # softmax in place on the logits buffer: one (nW L, nW) matrix alive per head
        top = torch.maximum(logits.mul_(scale).amax(-1), own.view(b, nh, -1))
        probs = logits.sub_(top[..., None]).exp_()
        p_own = own.view(b, nh, -1).sub_(top).exp_()
        norm = probs.sum(-1).add_(p_own)
        probs.div_(norm[..., None])
        p_own = p_own.div_(norm).view(b, nh, nw, length)
        out = (probs @ hx[..., -1, :]).view(b, nh, nw, length, d)
        return probs, p_own, out.addcmul_(p_own[..., None], hx)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_y):
        saved, lay, scale = consume_saved(ctx, 'saved', 'RATAttention'), ctx.lay, ctx.scale
        c, gd = ctx.widths
        nh, ng = ctx.heads, ctx.groups
        b, hh, ww, _ = d_y.shape
        d_inp = d_y.new_empty(b, hh, ww, 3 * c + 2 * gd)
        s, out = saved.pop('s'), saved.pop('out')
        d_out = d_y * s
        torch.mul(d_out, out, out=d_inp[..., :c])
        # softmax backward needs sum_j p_j dp_j = d_attn . attn per row
        rowdot = lay.split(d_inp[..., :c].reshape(b, hh, ww, nh, -1).sum(-1), nh)[..., 0]
        d_inp[..., :c].mul_(1 - s)                                            # d z
        del s, out
        lam, d_qw = _RATCore._attend_backward(lay.split(d_out, nh), rowdot, saved, lay, scale,
                                              ng)
        del d_out, rowdot
        d_gate, d_xw, d_kw = _RATCore._scan_backward(lam, saved, ng)
        d_bias = d_gate.sum((0, 2, 3)).flatten()
        for piece, (lo, hi) in ((d_xw, (c, 2 * c)), (d_gate, (2 * c, 3 * c)),
                                (d_qw, (3 * c, 3 * c + gd)), (d_kw, (3 * c + gd, 3 * c + 2 * gd))):
            d_inp[..., lo:hi] = lay.merge(piece)
        return d_inp.to(ctx.inp_dtype), d_bias, None, None, None, None

    @staticmethod
    def _attend_backward(d_out, rowdot, saved, lay, scale, ng):
        """Gradients of :meth:`_attend`: the state gradients ``lam (B, 2, h, nW, L, d)`` and the
        query gradient ``(B, groups, nW, L, d)``."""
        h, qw, probs, p_own = saved['h'], saved['qw'], saved.pop('probs'), saved.pop('p_own')
        b, _, nh, nw, length, d = h.shape
        hx, hk = h[:, 0], h[:, 1]
        flat = d_out.view(b, nh, nw * length, d)
        dp = flat @ hx[..., -1, :].transpose(-1, -2)                          # B h nW L nW
        lam = h.new_empty(h.shape)
        torch.mul(d_out, p_own[..., None], out=lam[:, 0])
        lam[:, 0, :, :, -1] += probs.transpose(-1, -2) @ flat                 # d sum_x
        d_own = (d_out * hx).sum(-1).sub_(rowdot).mul_(p_own).mul_(scale)
        d_logits = dp.sub_(rowdot.view(b, nh, -1, 1)).mul_(probs).mul_(scale)
        del probs, dp
        q_rot, sum_k = qw, hk[..., -1, :]
        if lay.rope:
            q_rot, sum_k = lay.rotate(qw.transpose(2, 3)).transpose(2, 3), lay.rotate(sum_k)
        d_sum_k = d_logits.transpose(-1, -2) @ _per_head(q_rot, nh).reshape(b, nh, -1, d)
        d_q = _group_sum((d_logits @ sum_k).view(b, nh, nw, length, d), ng)
        del d_logits, q_rot
        if lay.rope:
            d_q = lay.rotate(d_q.transpose(2, 3), inverse=True).transpose(2, 3)
            d_sum_k = lay.rotate(d_sum_k, inverse=True)
        torch.mul(_per_head(qw, nh), d_own[..., None], out=lam[:, 1])
        lam[:, 1, :, :, -1] += d_sum_k
        d_q = d_q + _group_sum(d_own[..., None] * hk, ng)
        return lam, d_q

    @staticmethod
    def _scan_backward(lam, saved, ng):
        """Gradients of :func:`_gated_scan` from the state gradients ``lam`` (overwritten):
        ``lam_t += g_{t+1} lam_{t+1}`` backwards, then ``d u = (1 - g) lam`` and
        ``d g = lam . (h_{t-1} - u_t)``; returns the gate's pre-activation gradient and the
        value and key gradients."""
        gate, xw, kw, h = saved.pop('gate'), saved.pop('xw'), saved.pop('kw'), saved.pop('h')
        b, _, nh, nw, length, d = h.shape
        g2 = gate.unsqueeze(1)
        for t in range(length - 2, -1, -1):
            lam[..., t, :].addcmul_(g2[..., t + 1, :], lam[..., t + 1, :])
        # h_{t-1} - u_t with h_{-1} = 0, for values and (shared) keys
        d_gate = torch.empty_like(gate)
        torch.sub(h[:, 0, ..., :-1, :], xw[..., 1:, :], out=d_gate[..., 1:, :])
        torch.neg(xw[..., 0, :], out=d_gate[..., 0, :])
        d_gate.mul_(lam[:, 0])
        diff = torch.empty_like(gate).view(b, nh // ng, ng, nw, length, d)
        hk = h[:, 1].view(diff.shape)
        torch.sub(hk[..., :-1, :], kw.unsqueeze(1)[..., 1:, :], out=diff[..., 1:, :])
        torch.neg(kw.unsqueeze(1)[..., 0, :].expand_as(diff[..., 0, :]), out=diff[..., 0, :])
        d_gate.addcmul_(diff.view(gate.shape), lam[:, 1])
        del diff, hk, h
        keep = gate.neg_().add_(1)                                            # 1 - g, in place
        d_gate.mul_(keep).mul_(1 - keep)                                       # sigmoid'
        lam.mul_(keep.unsqueeze(1))
        return d_gate, lam[:, 0], _group_sum(lam[:, 1], ng)


@MODELS.register_module()
class RATAttention(nn.Module):
    """RAT on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        window_size: chunk side(s) ``p``; a chunk holds ``p_h p_w`` tokens (8: 64 tokens, the
            official default chunk; the paper also uses 16).
        num_groups: query / key groups shared by the heads (``ngroups``, 2 officially); None =
            2 when ``num_heads`` is even, else 1.
        rope: 2-D rotary embedding of the window positions (needs ``head_dim % 4 == 0``).
        rope_base: RoPE base.
        bias: bias of the projections (none officially).
    """

    def __init__(self, dim: int, num_heads: int = 8, window_size=8,
                 num_groups: Optional[int] = None, rope: bool = True, rope_base: float = 10000.0,
                 bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'RATAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        groups = num_groups if num_groups is not None else (2 if num_heads % 2 == 0 else 1)
        if groups < 1 or num_heads % groups:
            raise ValueError(f'RATAttention: num_groups ({groups}) must be >= 1 and divide '
                             f'num_heads ({num_heads})')
        self.window_size = to_pair(window_size, 'window_size')
        if min(self.window_size) < 1:
            raise ValueError(f'RATAttention: window_size must be >= 1, got {self.window_size}')
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        if rope and self.head_dim % 4:
            raise ValueError(f'RATAttention: rope needs head_dim ({self.head_dim}) divisible by '
                             f'4; use rope=False or another num_heads')
        self.num_groups, self.rope, self.rope_base = groups, rope, rope_base
        # z (gate), x (values), g (forget gate): dim each; q, k: groups * head_dim each
        self.in_proj = nn.Linear(dim, 3 * dim + 2 * groups * self.head_dim, bias=bias)
        self.gate_bias = nn.Parameter(torch.zeros(dim))
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        chunk = self.window_size[0] * self.window_size[1]
        with torch.no_grad():  # official init: b_g = log U(1, L - 1), so g starts near 1 - 1/L
            if chunk > 2:
                self.gate_bias.uniform_(1, chunk - 1).log_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        inp = self.in_proj(x.permute(0, 2, 3, 1))                            # B H W 3C + 2gd
        lay = _Layout((h, w), self.window_size, x.device, self.rope, self.rope_base)
        args = (inp, self.gate_bias, lay, self.num_heads, self.num_groups, self.head_dim ** -0.5)
        # sigmoid(z) * attn; a tracer (FLOP count) records the plain operations
        out = _RATCore.run(*args)[0] if torch.jit.is_tracing() else _RATCore.apply(*args)
        return self.out_proj(out).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, '
                f'num_groups={self.num_groups}, rope={self.rope}')
