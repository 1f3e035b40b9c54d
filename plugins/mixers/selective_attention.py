"""Selective self-attention: a query- and position-dependent temperature on the logits and on the
values.
Paper: Zhang, Chang, Li, Roy-Chowdhury, Chen, Oymak, "Selective Attention: Enhancing Transformer
through Principled Context Control" (NeurIPS 2024, arXiv 2411.12892), Sec. 3: SSA replaces
``softmax(Q K^T) V`` by ``softmax((tau_q(X) . Q) K^T) (tau_v(X) . V)``, each token's query and value
scaled by an inverse temperature ``tau(x) = tau_pos(x) + tau_tok(x)``:

* ``tau_pos = 1 + s log n`` (``n`` = keys the query sees) counters attention dilution; the released
  code (``umich-sota/selective_attention``, ``gpt_2_PTS.py``) parametrises ``s = exp(-exp(beta))``,
  ``beta = 1.5`` at init; here one ``beta`` per head for the queries and one for the values.
  An image query sees all ``n = H W`` keys, so ``tau_pos`` is a resolution-aware scalar.
* ``tau_tok(x) = tanh(u . GELU(W x))`` with the paper's weight sharing: ``W x`` is the head's own
  query (resp. value) projection, so each head adds one vector ``u`` (``2 C`` parameters per
  layer; zero at init, where SSA starts as plain attention with ``tau_pos``).

Non-causal: the paper is a language model (``n_i = i`` keys for query ``i``); on an image every
query sees the whole map. Cost: that of global attention, ``O(N^2 C)`` time on SDPA (the
temperatures are folded into ``q`` and ``v`` before the fused kernel), ``O(N C)`` extra memory.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS


@MODELS.register_module()
class SelectiveSelfAttention(nn.Module):
    """Global multi-head attention with SSA's query and value temperatures on ``(B, C, H, W)``.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        position_beta: initial ``beta`` of ``s = exp(-exp(beta))`` (released code: 1.5).
        value_temperature: also scale the values (the paper's value selectivity).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, position_beta: float = 1.5,
                 value_temperature: bool = True, qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'SelectiveSelfAttention: dim ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.beta_q = nn.Parameter(torch.full((num_heads,), float(position_beta)))
        self.u_q = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        if value_temperature:
            self.beta_v = nn.Parameter(torch.full((num_heads,), float(position_beta)))
            self.u_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        else:
            self.register_parameter('beta_v', None)
            self.register_parameter('u_v', None)

    @staticmethod
    def temperature(x: torch.Tensor, beta: torch.Tensor, u: torch.Tensor,
                    num_keys: int) -> torch.Tensor:
        """``tau = 1 + exp(-exp(beta)) log n + tanh(u . GELU(x))`` per token and head.

        x: ``(B, heads, N, d)`` (the head's projected query or value); returns ``(B, heads, N, 1)``.
        """
        position = 1 + torch.exp(-torch.exp(beta)) * math.log(num_keys)          # heads
        token = torch.tanh((F.gelu(x) * u[:, None, :]).sum(-1, keepdim=True))   # B h N 1
        return position[:, None, None] + token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x.flatten(2).transpose(1, 2))                             # B N 3C
        q, k, v = qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = q * self.temperature(q, self.beta_q, self.u_q, n)
        if self.u_v is not None:
            v = v * self.temperature(v, self.beta_v, self.u_v, n)
        out = F.scaled_dot_product_attention(q, k, v)                            # B h N d
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return out.transpose(1, 2).reshape(b, c, h, w)
