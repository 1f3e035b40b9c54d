"""Benchmark case of STViT's super token attention, with a faithful re-run of the official
``StokenAttention.stoken_forward`` (its identity-kernel conv2d ``Unfold``, conv_transpose2d
``Fold``, attention among super tokens as ``v @ softmax(k^T q)``), run with our weights."""
import torch
import torch.nn.functional as F

from plugins.mixers.super_token import SuperTokenAttention

from . import MixerCase

_EYE9 = torch.eye(9).reshape(9, 1, 3, 3)


def _unfold(x):  # b c h w -> b (c 9) (h w), as STViT's Unfold
    b, c, h, w = x.shape
    return F.conv2d(x.reshape(b * c, 1, h, w), _EYE9, padding=1).reshape(b, c * 9, h * w)


def _fold(x):  # b 9 h w -> b 1 h w, as STViT's Fold
    return F.conv_transpose2d(x, _EYE9, padding=1)


def stvit_official_formulation(m: SuperTokenAttention):
    attn = m.stoken_refine

    def refine(s):
        b, c, h, w = s.shape
        q, k, v = attn.qkv(s).reshape(b, attn.num_heads, c // attn.num_heads * 3, h * w).chunk(
            3, dim=2)
        a = ((k.transpose(-1, -2) @ q) * attn.scale).softmax(dim=-2)
        return attn.proj((v @ a).reshape(b, c, h, w))

    def run(x):
        B, C, H0, W0 = x.shape
        h, w = m.stoken_size
        pr, pb = (w - W0 % w) % w, (h - H0 % h) % h
        if pr or pb:
            x = F.pad(x, (0, pr, 0, pb))
        _, _, H, W = x.shape
        hh, ww = H // h, W // w
        st = F.adaptive_avg_pool2d(x, (hh, ww))
        pix = x.reshape(B, C, hh, h, ww, w).permute(0, 2, 4, 3, 5, 1).reshape(B, hh * ww, h * w, C)
        with torch.no_grad():
            for i in range(m.n_iter):
                st = _unfold(st).transpose(1, 2).reshape(B, hh * ww, C, 9)
                aff = (pix @ st * m.scale).softmax(-1)
                aff_sum = _fold(aff.sum(2).transpose(1, 2).reshape(B, 9, hh, ww))
                if i < m.n_iter - 1:
                    st = pix.transpose(-1, -2) @ aff
                    st = _fold(st.permute(0, 2, 3, 1).reshape(B * C, 9, hh, ww)).reshape(
                        B, C, hh, ww) / (aff_sum + 1e-12)
        st = pix.transpose(-1, -2) @ aff
        st = _fold(st.permute(0, 2, 3, 1).reshape(B * C, 9, hh, ww)).reshape(B, C, hh, ww)
        st = refine(st / (aff_sum.detach() + 1e-12))
        st = _unfold(st).transpose(1, 2).reshape(B, hh * ww, C, 9)
        out = (st @ aff.transpose(-1, -2)).reshape(B, hh, ww, C, h, w)
        out = out.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        return out[:, :, :H0, :W0]
    return run


CASES = [
    MixerCase('SuperTokenAttention s8', 'STViT (2211.11167)',
              lambda dim, heads: SuperTokenAttention(dim, heads, stoken_size=8), 'quadratic',
              'official STViT StokenAttention formulation', stvit_official_formulation,
              note='linear sampling / upsampling plus attention among N/64 super tokens '
                   '(quadratic in N/64)'),
    MixerCase('SuperTokenAttention s4', 'STViT (2211.11167)',
              lambda dim, heads: SuperTokenAttention(dim, heads, stoken_size=4), 'quadratic',
              'official STViT StokenAttention formulation', stvit_official_formulation,
              note='attention among N/16 super tokens'),
]
