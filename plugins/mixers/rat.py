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

Cost: ``O(N C log(p^2))`` for the parallel scan plus ``O(N (N / p^2) d)`` for the attention over
summaries; logits memory ``O(N^2 / p^2)`` per head.
"""
from typing import Optional

import torch
import torch.nn as nn

from ..ops.joint_attention import merge_padded_windows, padded_windows
from ..ops.recurrence import linear_recurrence
from ..ops.utils import to_pair
from ..registry import MODELS


def rope_2d(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding over 2-D positions (axial RoPE): the first half of the channels
    rotates by ``rows``, the second half by ``cols``, each half as in RoFormer (Su et al., arXiv
    2104.09864) with frequencies ``base^(-2i / (d / 2))``.

    ``x: (..., P, d)`` with ``d % 4 == 0``; ``rows``, ``cols``: ``(P,)`` positions.
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

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, nW, L, heads * d) -> (B, heads, nW, L, d)``."""
        b, nw, length, _ = t.shape
        return t.reshape(b, nw, length, self.num_heads, self.head_dim).permute(0, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gd = self.num_groups * self.head_dim
        inp = self.in_proj(x.permute(0, 2, 3, 1))                            # B H W 3C + 2gd
        z, xv, g, q, k = inp.split([c, c, c, gd, gd], dim=-1)
        reps = self.num_heads // self.num_groups  # head i uses group i % groups (official repeat)
        q, k = q.repeat(1, 1, 1, reps), k.repeat(1, 1, 1, reps)
        g = torch.sigmoid(g + self.gate_bias)
        # windows (B, nW, L, .) in raster order inside each window; padded slots are skipped by
        # the recurrence: gate 1 and input 0 keep the state of the last real token
        windows, valid = padded_windows(torch.cat([xv, k, g, q], -1).unsqueeze(1),
                                        self.window_size)
        xv, k, g, q = windows[:, 0].split([c, c, c, c], dim=-1)
        keep = valid[:, :, None]                                              # nW L 1
        gate = torch.where(keep, g, torch.ones_like(g)).repeat(1, 1, 1, 2)
        inputs = torch.where(keep, (1 - g).repeat(1, 1, 1, 2) * torch.cat([xv, k], -1),
                             torch.zeros_like(gate))
        states = linear_recurrence(gate, inputs, dim=2)                       # B nW L 2C
        state_x, state_k = (self._heads(t) for t in states.split(c, dim=-1))  # B h nW L d
        q = self._heads(q)
        grid = (-(-h // self.window_size[0]), -(-w // self.window_size[1]))
        out = self._chunk_attention(q, state_k, state_x, grid)
        nw, length = valid.shape
        out = out.permute(0, 2, 3, 1, 4).reshape(b, 1, nw, length, c)
        out = merge_padded_windows(out, self.window_size, (h, w))[:, 0]       # B H W C
        return self.out_proj(torch.sigmoid(z) * out).permute(0, 3, 1, 2)

    def _chunk_attention(self, q, state_k, state_x, grid):
        """One softmax over the other windows' summaries and the query's own running state
        (``(B, heads, nW, L, d)`` each, windows on a ``grid`` of rows x columns); returns
        ``(B, heads, nW, L, d)``."""
        b, nh, nw, length, d = q.shape
        scale = d ** -0.5
        sum_k, sum_x = state_k[:, :, :, -1], state_x[:, :, :, -1]             # B h nW d
        q_rot = q
        if self.rope:
            pos = torch.arange(nw, device=q.device)
            rows, cols = pos // grid[1], pos % grid[1]
            q_rot = rope_2d(q.transpose(2, 3), rows, cols, self.rope_base).transpose(2, 3)
            sum_k = rope_2d(sum_k, rows, cols, self.rope_base)
        logits = torch.einsum('bhwld,bhvd->bhwlv', q_rot, sum_k) * scale      # B h nW L nW
        own_window = torch.eye(nw, dtype=torch.bool, device=q.device)[:, None, :]
        logits = logits.masked_fill(own_window, float('-inf'))
        own = (q * state_k).sum(-1, keepdim=True) * scale                     # B h nW L 1
        probs = torch.softmax(torch.cat([logits, own], -1), -1)
        return torch.einsum('bhwlv,bhvd->bhwld', probs[..., :nw], sum_x) + probs[..., nw:] * state_x

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, '
                f'num_groups={self.num_groups}, rope={self.rope}')
