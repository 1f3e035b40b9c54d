"""Benchmark cases of the local and global attention mixers (part 1 of the mixer issue), with
their peers: timm modules with the same weights, or a faithful re-run of the official code's
formulation (written here from the papers' code facts) where no installable peer exists.

The peers are also used by the tests as second, independent implementations.
"""
import math

import torch
import torch.nn.functional as F

from plugins.mixers.bilevel_routing import BiLevelRoutingAttention
from plugins.mixers.global_attention import GlobalSelfAttention
from plugins.mixers.halo import HaloAttention
from plugins.mixers.neighborhood import NeighborhoodAttention2d, clamp_dilation
from plugins.mixers.window import ModifiedShiftedWindowAttention, ShiftedWindowAttention
from plugins.ops.neighborhood import neighborhood_window_starts

from ..peers import import_timm
from . import MixerCase


# ------------------------------------------------------------------ neighborhood attention

def _neighbour_index(length, kernel, dilation):
    """(L, k): the key positions of each query along one axis (NATTEN's windows, per group)."""
    idx = torch.empty(length, kernel, dtype=torch.long)
    for a in range(min(dilation, length)):
        pos = torch.arange(a, length, dilation)
        n = len(pos)
        ke = min(kernel, n)
        ws = neighborhood_window_starts(n, kernel)
        cols = (ws[:, None] + torch.arange(ke)[None]).clamp(max=n - 1)
        cols = torch.cat([cols, cols[:, -1:].expand(-1, kernel - ke)], 1)
        idx[pos] = pos[cols]
    return idx


def na_gather_formulation(m: NeighborhoodAttention2d):
    """NATTEN's legacy CPU formulation (pre-0.20 ``na2d_qk`` + ``rpb`` / ``na2d_av``): gather the
    ``k x k`` neighbourhood of every query, then attend (the "plain gather" of the issue)."""
    def run(x):
        b, c, h, w = x.shape
        kh, kw = m.kernel_size
        dh = clamp_dilation(h, kh, m.dilation[0])
        dw = clamp_dilation(w, kw, m.dilation[1])
        ih, iw = _neighbour_index(h, kh, dh), _neighbour_index(w, kw, dw)
        flat = (ih[:, None, :, None] * w + iw[None, :, None, :]).reshape(h * w, kh * kw)
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, m.num_heads, m.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # B heads N d
        kg, vg = k[:, :, flat], v[:, :, flat]  # B heads N k^2 d
        logits = torch.einsum('bhnd,bhnkd->bhnk', q * m.scale, kg)
        if m.rpb is not None:
            pos = torch.arange(h * w)
            ry = (flat // w - (pos // w)[:, None]) // dh + kh - 1
            rx = (flat % w - (pos % w)[:, None]) // dw + kw - 1
            logits = logits + m.rpb[:, ry, rx]
        out = torch.einsum('bhnk,bhnkd->bhnd', logits.softmax(-1), vg)
        out = m.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


# ------------------------------------------------------------------ window attention

def timm_davit_window(m: ShiftedWindowAttention):
    """timm DaViT: pad the input to window multiples, partition, ``WindowAttention``, merge."""
    timm = import_timm()
    from timm.models.davit import WindowAttention, window_partition, window_reverse
    peer = WindowAttention(m.dim, m.window_size, m.num_heads)
    peer.load_state_dict({k: v for k, v in m.state_dict().items()
                          if k.startswith(('qkv', 'proj'))})
    del timm
    ws = m.window_size

    def run(x):
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1)
        t = F.pad(t, (0, 0, 0, (-w) % ws[1], 0, (-h) % ws[0]))
        hp, wp = t.shape[1:3]
        win = window_partition(t, ws).view(-1, ws[0] * ws[1], c)
        out = window_reverse(peer(win).view(-1, ws[0], ws[1], c), ws, hp, wp)
        return out[:, :h, :w].permute(0, 3, 1, 2)
    return run


def timm_swin_block_attention(m: ShiftedWindowAttention):
    """timm Swin: ``SwinTransformerBlock._attn`` (roll, pad, partition, masked ``WindowAttention``
    with the relative position bias table, merge, roll back) with our weights."""
    import_timm()
    from timm.models.swin_transformer import SwinTransformerBlock
    blk = SwinTransformerBlock(m.dim, (56, 56), m.num_heads, window_size=m.window_size,
                               shift_size=m.shift_size, dynamic_mask=True)
    blk.attn.load_state_dict(m.state_dict(), strict=False)

    def run(x):
        return blk._attn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return run


def hidiffusion_formulation(m: ModifiedShiftedWindowAttention, step: int = 1):
    """HiDiffusion's MSW-MSA as its official code runs it on even maps: roll by ``-shift``, view as
    2 x 2 windows, attention per window, merge, roll back."""
    def run(x):
        b, c, h, w = x.shape
        wh, ww = math.ceil(h / 2), math.ceil(w / 2)
        sh, sw = (wh // 4) * step, (ww // 4) * step
        t = m.qkv(torch.roll(x.permute(0, 2, 3, 1), shifts=(-sh, -sw), dims=(1, 2)))
        t = t.view(b, 2, wh, 2, ww, 3, m.num_heads, m.head_dim)
        q, k, v = t.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, b * 4, m.num_heads, wh * ww, -1)
        out = F.scaled_dot_product_attention(q, k, v)  # b*4 heads N d
        out = out.view(b, 2, 2, m.num_heads, wh, ww, m.head_dim).permute(0, 1, 4, 2, 5, 3, 6)
        out = m.proj(out.reshape(b, h, w, c))
        return torch.roll(out, shifts=(sh, sw), dims=(1, 2)).permute(0, 3, 1, 2)
    return run


# ------------------------------------------------------------------ halo attention

def timm_halo(m: HaloAttention):
    """timm ``HaloAttn`` with our weights (needs H, W multiples of the block size)."""
    import_timm()
    from timm.layers.halo_attn import HaloAttn
    peer = HaloAttn(m.q.in_channels, num_heads=m.num_heads, block_size=m.block_size,
                    halo_size=m.halo_size, dim_head=m.dim_head_qk,
                    qkv_bias=m.q.bias is not None, scale_pos_embed=m.scale_pos_embed)
    peer.load_state_dict(m.state_dict())
    return peer


# ------------------------------------------------------------------ bi-level routing

def biformer_formulation(m: BiLevelRoutingAttention):
    """BiFormer's official ``BiLevelRoutingAttention`` (``ops/bra_legacy.py``, auto_pad, identity
    kv downsampling, no routing weights) re-run step by step: region split, per-region means,
    top-k routing, ``torch.gather`` of the routed regions from a ``p^2``-fold expanded view,
    attention, LePE, output projection."""
    def run(x):
        b, c, h, w = x.shape
        s = m.n_win
        t = x.permute(0, 2, 3, 1)
        t = F.pad(t, (0, 0, 0, (-w) % s, 0, (-h) % s))
        hp, wp = t.shape[1:3]
        rh, rw = hp // s, wp // s
        t = t.view(b, s, rh, s, rw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, s * s, rh, rw, c)
        q, kv = m.qkv.qkv(t).split([m.qk_dim, m.qk_dim + m.dim], dim=-1)
        q_pix = q.reshape(b, s * s, rh * rw, m.qk_dim)
        kv_pix = kv.reshape(b, s * s, rh * rw, -1)
        q_win, k_win = q.mean([2, 3]), kv[..., :m.qk_dim].mean([2, 3])
        v_map = kv[..., m.qk_dim:].view(b, s, s, rh, rw, m.dim).permute(0, 5, 1, 3, 2, 4)
        lepe = m.lepe(v_map.reshape(b, m.dim, hp, wp)).permute(0, 2, 3, 1)
        logit = (q_win.detach() * m.scale) @ k_win.detach().transpose(-2, -1)
        r_idx = torch.topk(logit, k=min(m.topk, s * s), dim=-1).indices  # b p2 topk
        p2, topk, w2, ckv = s * s, r_idx.shape[-1], rh * rw, kv_pix.shape[-1]
        sel = torch.gather(kv_pix.view(b, 1, p2, w2, ckv).expand(-1, p2, -1, -1, -1), 2,
                           r_idx.view(b, p2, topk, 1, 1).expand(-1, -1, -1, w2, ckv))
        k_sel, v_sel = sel.split([m.qk_dim, m.dim], dim=-1)
        nh = m.num_heads
        k_sel = k_sel.reshape(b * p2, topk * w2, nh, -1).permute(0, 2, 3, 1)
        v_sel = v_sel.reshape(b * p2, topk * w2, nh, -1).permute(0, 2, 1, 3)
        qh = q_pix.reshape(b * p2, w2, nh, -1).permute(0, 2, 1, 3)
        attn = ((qh * m.scale) @ k_sel).softmax(-1)
        out = (attn @ v_sel).view(b, s, s, nh, rh, rw, -1).permute(0, 1, 4, 2, 5, 3, 6)
        out = m.wo(out.reshape(b, hp, wp, c) + lepe)[:, :h, :w]
        return out.permute(0, 3, 1, 2)
    return run


# ------------------------------------------------------------------ global attention

def timm_vit_attention(m: GlobalSelfAttention):
    """timm ViT ``Attention`` (fused SDPA) with our weights, on the flattened map."""
    import_timm()
    from timm.models.vision_transformer import Attention
    peer = Attention(m.qkv.in_features, num_heads=m.num_heads, qkv_bias=m.qkv.bias is not None)
    peer.load_state_dict(m.state_dict())

    def run(x):
        b, c, h, w = x.shape
        return peer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
    return run


_HAS_TIMM = import_timm() is not None

CASES = [
    MixerCase('NeighborhoodAttention2d k7', 'NAT (2204.07143)',
              lambda dim, heads: NeighborhoodAttention2d(dim, heads, kernel_size=7),
              'local', 'gather-every-neighbourhood (legacy NATTEN CPU formulation)',
              na_gather_formulation, grids=[(200, 304, 128)],
              note='natten 0.21.7 on CPU is forward-only and far slower (measurements.md)'),
    MixerCase('NeighborhoodAttention2d k7 d2 (DiNAT)', 'DiNAT (2209.15001)',
              lambda dim, heads: NeighborhoodAttention2d(dim, heads, kernel_size=7, dilation=2),
              'local', 'gather-every-neighbourhood (legacy NATTEN CPU formulation)',
              na_gather_formulation, grids=[(200, 304, 128)]),
    MixerCase('ShiftedWindowAttention w7 (DaViT)', 'DaViT (2204.03645)',
              lambda dim, heads: ShiftedWindowAttention(dim, heads, 7, rel_pos_bias=False),
              'local', 'timm DaViT WindowAttention' if _HAS_TIMM else None,
              timm_davit_window if _HAS_TIMM else None),
    MixerCase('ShiftedWindowAttention w7 s3 rpb (Swin)', 'Swin (2103.14030)',
              lambda dim, heads: ShiftedWindowAttention(dim, heads, 7, 3),
              'local', 'timm SwinTransformerBlock._attn' if _HAS_TIMM else None,
              timm_swin_block_attention if _HAS_TIMM else None),
    MixerCase('ModifiedShiftedWindowAttention (HiDiffusion)', 'HiDiffusion (2311.17528)',
              lambda dim, heads: _FixedStep(ModifiedShiftedWindowAttention(dim, heads)),
              'quadratic', 'official MSW-MSA formulation',
              lambda m: hidiffusion_formulation(m.inner, 1),
              note='windows of half the map: a quarter of global cost, still quadratic'),
    MixerCase('HaloAttention b8 h3', 'HaloNet (2103.12731)',
              lambda dim, heads: HaloAttention(dim, heads, block_size=8, halo_size=3),
              'local', 'timm HaloAttn' if _HAS_TIMM else None,
              timm_halo if _HAS_TIMM else None,
              note='timm needs H, W multiples of 8: no peer at other sizes'),
    MixerCase('BiLevelRoutingAttention S7 topk4', 'BiFormer (2303.08810)',
              lambda dim, heads: BiLevelRoutingAttention(dim, heads, n_win=7, topk=4),
              'quadratic', 'official bra_legacy formulation', biformer_formulation,
              note='fixed S regions: cost grows as tokens^2 / S^2 (topk of S^2 regions)'),
    MixerCase('GlobalSelfAttention', 'Transformer (1706.03762)',
              lambda dim, heads: GlobalSelfAttention(dim, heads), 'quadratic',
              'timm ViT Attention' if _HAS_TIMM else None,
              timm_vit_attention if _HAS_TIMM else None),
]


class _FixedStep(torch.nn.Module):
    """MSW-MSA with its shift step fixed to 1, so that the mixer and its peer compute the same."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x, step=1)
