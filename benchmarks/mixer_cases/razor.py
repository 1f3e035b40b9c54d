"""Benchmark case of RazorAttention (compressed global attention: 15 % retrieval heads, the rest a
7 x 7 window plus one compensation token), beside its dense reference (no official code exists):
every head's full logits, the window mask, the masked mean key and value outside the window and
the ``log m`` bias, then one softmax; our weights. The saving against uncompressed global
attention is the "vs global" column."""
import torch

from plugins.mixers.razor import RazorAttention
from plugins.ops.band_attention import band_mask

from . import MixerCase


def dense_formulation(m: RazorAttention):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, m.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        inside = band_mask((h, w), (m.window_size[0] // 2, m.window_size[1] // 2), x.device)
        outside = (~inside).to(x.dtype)
        count = outside.sum(1)
        k_hat = (outside @ k) / count.clamp_min(1)[:, None]
        v_hat = (outside @ v) / count.clamp_min(1)[:, None]
        logits = (q @ k.transpose(-1, -2)) * m.head_dim ** -0.5
        extra = (q * k_hat).sum(-1, keepdim=True) * m.head_dim ** -0.5 + count.log()[:, None]
        attn = torch.cat([logits.masked_fill(~inside, float('-inf')), extra], -1).softmax(-1)
        compressed = attn[..., :-1] @ v + attn[..., -1:] * v_hat
        out = torch.where(m.retrieval_mask[None, :, None, None], logits.softmax(-1) @ v,
                          compressed)
        out = m.proj(out.transpose(1, 2).reshape(b, n, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('RazorAttention w7 r0.15', 'RazorAttention (2407.15891)',
              lambda dim, heads: RazorAttention(dim, heads), 'quadratic',
              'dense masked reference (no official code)', dense_formulation,
              note='retrieval heads quadratic, the others O(N k^2)'),
]
