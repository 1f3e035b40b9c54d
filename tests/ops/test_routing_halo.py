"""Bi-level routing attention and halo attention equal their dense specifications."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks.peers import import_timm
from plugins.ops.global_attention import dense_attention
from plugins.ops.halo import halo_attention_2d
from plugins.ops.routing import bilevel_routing_attention


def _qkv(h, w, heads=2, d=8, b=2, dtype=torch.float32):
    return [torch.randn(b, heads, h, w, d, dtype=dtype, requires_grad=True) for _ in range(3)]


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


# ---------------------------------------------------------------- bi-level routing (BiFormer)

def bra_reference(q, k, v, n_win, index, scale):
    """Token i attends to token j iff j's region is among the routed regions of i's region."""
    b, nh, h, w, d = q.shape
    hp, wp = -(-h // n_win) * n_win, -(-w // n_win) * n_win
    q, k, v = (F.pad(t, (0, 0, 0, wp - w, 0, hp - h)) for t in (q, k, v))
    ys, xs = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    region = ((ys // (hp // n_win)) * n_win + xs // (wp // n_win)).flatten()  # per token
    routed = torch.zeros(b, n_win ** 2, n_win ** 2, dtype=torch.bool)
    routed.scatter_(2, index, True)
    mask = routed[:, region][:, :, region]  # B N N
    out = dense_attention(q.reshape(b, nh, -1, d), k.reshape(b, nh, -1, d),
                          v.reshape(b, nh, -1, v.shape[-1]), mask=mask[:, None], scale=scale)
    return out.reshape(b, nh, hp, wp, -1)[:, :, :h, :w]


@pytest.mark.parametrize('h,w,n_win,topk', [(14, 14, 7, 4), (13, 21, 7, 4), (12, 16, 4, 3),
                                            (5, 6, 7, 2), (16, 16, 2, 4)])
def test_routing_attention_matches_dense_reference(h, w, n_win, topk):
    q, k, v = _qkv(h, w)
    out, index = bilevel_routing_attention(q, k, v, n_win, topk, return_index=True)
    assert index.shape == (2, n_win ** 2, min(topk, n_win ** 2))
    ref = bra_reference(q, k, v, n_win, index, q.shape[-1] ** -0.5)
    assert _rel_err(out, ref) <= 1e-5
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert _rel_err(a, b) <= 1e-5


def test_routing_picks_the_regions_of_largest_mean_affinity():
    q, k, v = [t.detach() for t in _qkv(8, 8, heads=2, b=1)]
    _, index = bilevel_routing_attention(q, k, v, 2, 2, return_index=True)
    qr = q.view(1, 2, 2, 4, 2, 4, 8).mean((3, 5)).permute(0, 2, 3, 1, 4).reshape(1, 4, 16)
    kr = k.view(1, 2, 2, 4, 2, 4, 8).mean((3, 5)).permute(0, 2, 3, 1, 4).reshape(1, 4, 16)
    expected = (qr @ kr.transpose(1, 2)).topk(2, dim=-1).indices
    assert torch.equal(index.sort(-1).values, expected.sort(-1).values)


def test_routing_bfloat16_is_close_to_fp32():
    q, k, v = _qkv(14, 14)
    out, index = bilevel_routing_attention(q, k, v, 7, 4, return_index=True)
    ref = bra_reference(q, k, v, 7, index, 8 ** -0.5)
    out16 = bilevel_routing_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 7, 4)
    # bf16 may route differently where region affinities tie closely; compare where it did not
    _, index16 = bilevel_routing_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 7, 4,
                                           return_index=True)
    same = (index.sort(-1).values == index16.sort(-1).values).all(-1)  # B S^2
    assert same.float().mean() > 0.8
    region_same = same.view(2, 7, 1, 7, 1).expand(2, 7, 2, 7, 2).reshape(2, 14, 14)
    diff = (out16.float() - ref).abs().amax((1, 4))[region_same]
    assert (diff.max() / ref.abs().max()).item() <= 3e-2


# ---------------------------------------------------------------- halo attention (HaloNet)

def halo_reference(q, k, v, block, halo, rel_h, rel_w, scale_pos_embed=False):
    """Tokens on the zero-padded grid; query i attends to keys in its block grown by the halo,
    with logit q.k * s + q.r_h[dy + halo + win - 1] + q.r_w[dx + halo + win - 1]."""
    b, nh, h, w, d = q.shape
    win = block + 2 * halo
    hp, wp = -(-h // block) * block, -(-w // block) * block
    q = F.pad(q, (0, 0, 0, wp - w, 0, hp - h))
    k, v = (F.pad(t, (0, 0, halo, halo + wp - w, halo, halo + hp - h)) for t in (k, v))
    grid = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    qy, qx = [t.flatten() for t in grid]
    grid = torch.meshgrid(torch.arange(hp + 2 * halo), torch.arange(wp + 2 * halo), indexing='ij')
    ky, kx = [t.flatten() - halo for t in grid]
    def inside(qc, kc):
        start = (qc // block) * block - halo
        return (kc[None] >= start[:, None]) & (kc[None] < start[:, None] + win)
    mask = inside(qy, ky) & inside(qx, kx)
    dy = (ky[None] - qy[:, None] + halo + win - 1).clamp(0, 2 * win - 2)
    dx = (kx[None] - qx[:, None] + halo + win - 1).clamp(0, 2 * win - 2)
    qf = q.reshape(b, nh, -1, d)
    pos = (qf @ rel_h.t()).gather(-1, dy.expand(b, nh, -1, -1)) + \
          (qf @ rel_w.t()).gather(-1, dx.expand(b, nh, -1, -1))
    s = d ** -0.5
    bias = pos * s if scale_pos_embed else pos  # (qk + pos) s  or  qk s + pos
    out = dense_attention(qf, k.reshape(b, nh, -1, d), v.reshape(b, nh, -1, v.shape[-1]),
                          mask=mask, bias=bias, scale=s)
    return out.reshape(b, nh, hp, wp, -1)[:, :, :h, :w]


@pytest.mark.parametrize('h,w,block,halo', [(8, 12, 4, 2), (13, 21, 4, 1), (5, 6, 8, 3),
                                            (16, 16, 8, 3)])
@pytest.mark.parametrize('scale_pos_embed', [False, True])
def test_halo_attention_matches_dense_reference(h, w, block, halo, scale_pos_embed):
    q, k, v = _qkv(h, w)
    win = block + 2 * halo
    rel_h, rel_w = (torch.randn(2 * win - 1, 8, requires_grad=True) * 0.3 for _ in range(2))
    out = halo_attention_2d(q, k, v, block, halo, rel_h, rel_w, scale_pos_embed=scale_pos_embed)
    ref = halo_reference(q, k, v, block, halo, rel_h, rel_w, scale_pos_embed)
    assert _rel_err(out, ref) <= 1e-5
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g, retain_graph=True),
                    torch.autograd.grad(ref, (q, k, v), g, retain_graph=True)):
        assert _rel_err(a, b) <= 1e-5


def test_halo_attention_bfloat16_is_close_to_fp32():
    q, k, v = _qkv(13, 21)
    rel_h, rel_w = torch.randn(15, 8) * 0.3, torch.randn(15, 8) * 0.3
    ref = halo_reference(q, k, v, 4, 2, rel_h, rel_w)
    out = halo_attention_2d(q.bfloat16(), k.bfloat16(), v.bfloat16(), 4, 2, rel_h.bfloat16(),
                            rel_w.bfloat16())
    assert _rel_err(out.float(), ref) <= 3e-2


timm = import_timm()


@pytest.mark.skipif(timm is None, reason='timm is not installed')
def test_halo_attention_equals_timm_haloattn_with_the_same_weights():
    from timm.layers.halo_attn import HaloAttn

    from plugins.ops.utils import merge_heads, split_heads
    m = HaloAttn(32, num_heads=4, block_size=4, halo_size=2).eval()
    x = torch.randn(2, 32, 8, 12)
    with torch.no_grad():
        ref = m(x)
        q, kv = m.q(x), m.kv(x).view(2, 4, 16, 8, 12)  # timm: per head [k (8), v (8)]
        k, v = kv[:, :, :8].reshape(2, 32, 8, 12), kv[:, :, 8:].reshape(2, 32, 8, 12)
        out = halo_attention_2d(split_heads(q, 4), split_heads(k, 4), split_heads(v, 4), 4, 2,
                                m.pos_embed.height_rel, m.pos_embed.width_rel)
    assert _rel_err(merge_heads(out), ref) <= 1e-5
