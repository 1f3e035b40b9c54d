"""Benchmark case of key-driven GQA, beside the official ``KDGQA.forward`` formulation
(``modules/attention/kdgqa.py``): norms, min-max, rounded allocation with the argmax / argmin fix,
``torch.split`` of the query heads by the allocation and one explicit softmax per group, run with
our weights (batch 1, where its batch-summed norms are the image's own)."""
import torch
import torch.nn.functional as F

from plugins.mixers.key_driven_gqa import KeyDrivenGQA

from . import MixerCase


def official_formulation(m: KeyDrivenGQA):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        t = x.flatten(2).transpose(1, 2)
        q = m.q(t).view(b, n, m.num_heads, -1).transpose(1, 2) * m.head_dim ** -0.5
        k = m.k(t).view(b, n, m.num_kv_heads, -1).transpose(1, 2)
        v = m.v(t).view(b, n, m.num_kv_heads, -1).transpose(1, 2)
        norms = torch.norm(k, dim=(2, 3)).sum(dim=0)
        lo, hi = norms.min(), norms.max()
        norms = (norms - lo) / (hi - lo) if hi > lo else torch.ones_like(norms)
        alloc = (norms / norms.sum() * m.num_heads).round().int()
        while alloc.sum() > m.num_heads:
            alloc[torch.argmax(alloc)] -= 1
        while alloc.sum() < m.num_heads:
            alloc[torch.argmin(alloc)] += 1
        outs = []
        for qg, kg, vg in zip(torch.split(q, tuple(alloc.tolist()), dim=1),
                              torch.split(k, 1, dim=1), torch.split(v, 1, dim=1)):
            outs.append(F.softmax(qg @ kg.transpose(-2, -1), dim=-1) @ vg)
        out = m.proj(torch.cat(outs, dim=1).transpose(1, 2).reshape(b, n, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('KeyDrivenGQA (KDGQA)', 'Key-driven GQA (2408.08454)',
              lambda dim, heads: KeyDrivenGQA(dim, heads).eval(), 'quadratic',
              'official KDGQA per-group formulation', official_formulation,
              note='global attention with H / 2 key-value heads'),
]
