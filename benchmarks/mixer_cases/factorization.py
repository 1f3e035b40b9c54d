"""Benchmark case of FaViT's factorization self-attention, with a faithful re-run of the official
``Attention.forward`` (ReflectionPad2d, nn.Unfold, AdaptiveAvgPool2d of the flattened features),
run with our weights. Where H or W is not a multiple of ``sr`` the strided SR conv drops the
leftover rows / columns, as the official one does."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from plugins.mixers.factorization import FactorizationAttention

from . import MixerCase


def favit_official_formulation(m: FactorizationAttention):
    sr, k, h = m.sr_ratio, m.window_size, m.num_heads
    unfolds = [nn.Unfold(k, dilation=d, stride=s) for d, s in zip(m.dilations, m.strides)]

    def run(x):
        B, C, H, W = x.shape
        N = H * W
        c0 = m.single_dim[0]
        t = x.flatten(2).transpose(1, 2)
        q = m.q(t)
        q_g = q[:, :, :c0].reshape(B, N, 1, c0).permute(0, 2, 1, 3)
        x_g = m.norm(m.sr(x[:, :c0]).reshape(B, c0, -1).permute(0, 2, 1))
        Hg, Wg = H // sr, W // sr
        kv_g = m.kv_g(x_g).reshape(B, -1, 2, 1, c0).permute(2, 0, 3, 1, 4)
        k_g, v_g = kv_g[0], kv_g[1]
        a = ((q_g @ k_g.transpose(-2, -1)) * m.scales[0]).softmax(dim=-1)
        v_g = v_g + m.local_conv_g(v_g.transpose(1, 2).reshape(B, -1, c0).transpose(1, 2).view(
            B, c0, Hg, Wg)).view(B, c0, -1).view(B, 1, c0, -1).transpose(-1, -2)
        out = (a @ v_g).transpose(1, 2).reshape(B, N, c0)
        q_l = q[:, :, c0:].reshape(B, N, h, -1).permute(0, 2, 1, 3)
        kv_l = m.kv_l(x[:, c0:])
        outs = [out]
        for i in range(1, len(m.mul)):
            d = m.single_dim[i] // h
            if i == 1:
                q_, kv_ = q_l[..., :m.single_dim[1] // h], kv_l[:, :m.single_dim[1]]
            else:
                q_, kv_ = q_l[..., m.single_dim[1] // h:], kv_l[:, m.single_dim[1]:]
            s = m.strides[i - 1]
            kv_ = nn.ReflectionPad2d((0, (s - W % s) % s, 0, (s - H % s) % s))(kv_)
            kv_ = unfolds[i - 1](kv_).reshape(B, h, d, k * k, -1).permute(0, 1, 3, 4, 2)
            kv_ = nn.AdaptiveAvgPool2d((None, d))(kv_.reshape(B, h, k * k, -1))
            kv_ = m.single_heads[i - 1](m.fcs[i - 1](kv_))
            k_, v_ = kv_[..., :d], kv_[..., d:]
            a = ((q_ @ k_.transpose(-2, -1)) * m.scales[i]).softmax(dim=-1)
            v_ = v_ + m.local_convs[i - 1](v_.transpose(2, 3).reshape(B, m.single_dim[i], k, k)
                                           ).view(B, h, d, k * k).transpose(2, 3)
            outs.append((a @ v_).permute(0, 2, 1, 3).reshape(B, N, m.single_dim[i]))
        out = m.proj(torch.cat(outs, -1))
        return out.transpose(1, 2).reshape(B, C, H, W)
    return run


CASES = [
    MixerCase('FactorizationAttention sr4', 'FaViT (TNNLS)',
              lambda dim, heads: FactorizationAttention(dim, heads, sr_ratio=4), 'quadratic',
              'official FaViT Attention formulation', favit_official_formulation,
              note='the SR-global group is N x N/16 (quadratic); the dilated groups are N x 49'),
]
