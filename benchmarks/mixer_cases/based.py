"""Benchmark case of BASED (non-causal, 2-D), beside BASED's own pure-PyTorch formulation: the
"quadratic" ``parallel_forward`` of ``LinearAttention`` (``A = phi(q) phi(k)^T``,
``y = A v / (phi(q) . sum phi(k) + eps)``, without the causal ``tril`` / ``cumsum``) and, for the
window, SDPA with the dense sliding-window mask (the released window runs in flash-attention, CUDA
only); our weights."""
import math

import torch
import torch.nn.functional as F

from plugins.mixers.based import BasedAttention
from plugins.ops.band_attention import band_mask

from . import MixerCase


def _taylor_exp(x):
    """BASED's ``TaylorExp.forward`` as written."""
    d = x.shape[-1]
    x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(start_dim=-2) / math.sqrt(2)
    return torch.cat([x[..., :1] ** 0, x / math.sqrt(math.sqrt(d)), x2 / math.sqrt(d)], dim=-1)


def quadratic_formulation(m: BasedAttention):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        t = x.flatten(2).transpose(1, 2)
        q = _taylor_exp(m.proj_q(t).view(b, n, m.num_heads, -1).transpose(1, 2))
        k = _taylor_exp(m.proj_k(t).view(b, n, m.num_heads, -1).transpose(1, 2))
        v = m.proj_v(t).view(b, n, m.num_heads, -1).transpose(1, 2)
        a_qk = torch.einsum('bhnd,bhmd->bhnm', q, k)
        y = torch.einsum('bhnm,bhme->bhne', a_qk, v)
        y = y / (torch.einsum('bhld,bhd->bhl', q, k.sum(2)) + m.eps)[..., None]
        linear = m.out_proj(y.transpose(1, 2).reshape(b, n, c))
        qw, kw, vw = m.window_qkv(t).view(b, n, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
        mask = band_mask((h, w), (m.window_size[0] // 2, m.window_size[1] // 2), x.device)
        window = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask)
        window = m.window_proj(window.transpose(1, 2).reshape(b, n, c))
        return (linear + window).transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('BasedAttention d16 w7', 'BASED (2402.18668)',
              lambda dim, heads: BasedAttention(dim, heads), 'linear',
              'BASED quadratic parallel form + dense-mask window SDPA', quadratic_formulation,
              note='the peer is quadratic in tokens', peer_scaling='quadratic'),
]
