"""Benchmark case of S2-Attention on 2-D tiles, beside the dense reference its kernel library
tests against: SDPA with the dense per-head mask (dkernel ``get_sparse_attn_mask(...,
return_dense=True)``: the block mask expanded to tokens), run with our weights. (The dkernel
Triton kernel is CUDA-only and causal.)"""
import torch.nn.functional as F

from plugins.mixers.s2_attention import S2Attention2d
from plugins.ops.strided_sparse import s2_attention_mask

from . import MixerCase


def dense_mask_formulation(m: S2Attention2d):
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        mask = s2_attention_mask((h, w), m.tile_size, m.local_tiles, m.vert_stride, m.num_heads)
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, m.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(x.device))
        out = m.proj(out.transpose(1, 2).reshape(b, n, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('S2Attention2d t8 L2', 'S2-Attention (2407.17678)',
              lambda dim, heads: S2Attention2d(dim, heads), 'quadratic',
              'dense-mask SDPA (dkernel return_dense)', dense_mask_formulation,
              note='strided shard: 1 / (V_a V_b) of global attention, plus 3 x 3 local tiles'),
]
