"""Benchmark case of selective self-attention, beside the released code's formulation: the
explicit-softmax ``scaled_dot_product_attention`` of ``umich-sota/selective_attention``
(``gpt_2_PTS.py``: logits times ``1 + exp(-exp(beta)) log n``, then softmax) with the paper's token
temperatures on the queries and values added in the same explicit style, run with our weights.
"""
import math

import torch
import torch.nn.functional as F

from plugins.mixers.selective_attention import SelectiveSelfAttention

from . import MixerCase


def released_formulation(m: SelectiveSelfAttention):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, m.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        tok_q = torch.tanh((F.gelu(q) * m.u_q[:, None]).sum(-1, keepdim=True))
        tok_v = torch.tanh((F.gelu(v) * m.u_v[:, None]).sum(-1, keepdim=True))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(m.head_dim))
        att = att * (1 + torch.exp(-torch.exp(m.beta_q))[:, None, None] * math.log(n) + tok_q)
        att = torch.softmax(att, dim=-1)
        v = v * (1 + torch.exp(-torch.exp(m.beta_v))[:, None, None] * math.log(n) + tok_v)
        out = m.proj((att @ v).transpose(1, 2).reshape(b, n, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('SelectiveSelfAttention', 'Selective Attention (2411.12892)',
              lambda dim, heads: SelectiveSelfAttention(dim, heads), 'quadratic',
              'released explicit-softmax formulation (+ token temperatures)',
              released_formulation, note='global attention with temperatures folded into q, v'),
]
