"""Benchmark case of 2-D relative attention with Music Transformer's skewing, beside the gathered
form it replaces (Shaw et al.; tensor2tensor's ``python_relative_att`` oracle, vectorised): one
relative embedding per query-key pair, ``O(N^2 d)`` memory, run with our weights. The peak-memory
column is the point of this case: skewing keeps the extra memory at ``O(N (H + W))``."""
import torch

from plugins.mixers.relative_attention import RelativeSelfAttention2d

from . import MixerCase


def _gathered(table, h, w, axis):
    m = (table.shape[1] + 1) // 2
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = (ys if axis == 'h' else xs).flatten().to(table.device)
    offset = pos[None, :] - pos[:, None]
    rows = table[:, (offset + m - 1).clamp(0, 2 * m - 2)]                # heads N N d
    return rows * (offset.abs() < m)[None, :, :, None]


def gathered_formulation(m: RelativeSelfAttention2d):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, m.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        shape = (m.num_heads, -1, m.head_dim)
        rel = _gathered(m.height_key_relative_embeddings.expand(shape), h, w, 'h') + \
            _gathered(m.width_key_relative_embeddings.expand(shape), h, w, 'w')
        logits = q @ k.transpose(-1, -2) + torch.einsum('bhid,hijd->bhij', q, rel)
        out = (logits * m.head_dim ** -0.5).softmax(-1) @ v
        out = m.proj(out.transpose(1, 2).reshape(b, n, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('RelativeSelfAttention2d M32', 'Music Transformer (1809.04281)',
              lambda dim, heads: RelativeSelfAttention2d(dim, heads), 'quadratic',
              'gathered relative embeddings (O(N^2 d))', gathered_formulation,
              note='skewing vs gathering: compare the peak-memory columns'),
]
