"""SS2DMixer against the sequential selective scan; LaMambaMixer against dense masked attention."""
import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.lamamba import LaMambaMixer
from plugins.mixers.ss2d import SS2DMixer
from plugins.ops.selective_scan import selective_scan_sequential
from .mixer_checks import compare_bf16, compare_with_reference


def scan_orders(H, W):
    """Token indices (row-major numbering) of SS2D's four scan orders."""
    grid = torch.arange(H * W).view(H, W)
    rows, cols = grid.flatten(), grid.t().flatten()
    return [rows, cols, rows.flip(0), cols.flip(0)]


def dense_ss2d(m, x):
    """SS2D with every scan order as an explicit index permutation and the scan step by step."""
    B, C, H, W = x.shape
    xi, z = m.in_proj(x).chunk(2, dim=1)
    xi = m.act(m.conv2d(xi)).flatten(2)                                   # B D L
    y = 0
    for k, order in enumerate(scan_orders(H, W)):
        xs = xi[:, :, order]
        dbl = torch.einsum('bdl,cd->bcl', xs, m.x_proj_weight[k])
        dt, Bk, Ck = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=1)
        dt = torch.einsum('brl,dr->bdl', dt, m.dt_projs_weight[k])
        sl = slice(k * m.d_inner, (k + 1) * m.d_inner)
        yk = selective_scan_sequential(xs, dt, -torch.exp(m.A_logs[sl]), Bk, Ck, m.Ds[sl],
                                       delta_bias=m.dt_projs_bias[k], delta_softplus=True)
        y = y + torch.zeros_like(yk).index_copy(2, order, yk)             # back to row-major
    y = m.out_norm(y.transpose(1, 2)).transpose(1, 2).reshape(B, -1, H, W)
    return m.out_proj(y * m.act(z))


def dense_window_attention(attn, x):
    """Global softmax attention with Swin's window / shift-region mask and relative bias."""
    B, C, H, W = x.shape
    wh, ww = attn.window_size
    win = (min(wh, H), min(ww, W))
    sh, sw = (attn.shift_size[0] if H > wh else 0, attn.shift_size[1] if W > ww else 0)
    Hp, Wp = -(-H // win[0]) * win[0], -(-W // win[1]) * win[1]
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    ry, rx = ((ys - sh) % Hp).flatten(), ((xs - sw) % Wp).flatten()       # rolled coordinates
    wid = (ry // win[0]) * 1000 + rx // win[1]
    band = lambda r, P, w, s: (r >= P - w).long() + (r >= P - s).long() if s else 0 * r  # noqa
    region = band(ry, Hp, win[0], sh) * 3 + band(rx, Wp, win[1], sw)
    allowed = (wid[:, None] == wid[None]) & (region[:, None] == region[None])
    dy, dx = ry[:, None] - ry[None], rx[:, None] - rx[None]
    idx = ((dy + wh - 1) * (2 * ww - 1) + dx + ww - 1).clamp(0, (2 * wh - 1) * (2 * ww - 1) - 1)
    bias = attn.relative_position_bias_table[idx].permute(2, 0, 1)        # h N N
    bias = bias.masked_fill(~allowed, float('-inf'))
    h, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x.flatten(2).transpose(1, 2)).view(B, H * W, 3, h, d).permute(2, 0, 3, 1, 4)
    a = ((q @ k.transpose(-2, -1)) * d ** -0.5 + bias).softmax(-1)
    out = attn.proj((a @ v).transpose(1, 2).reshape(B, H * W, C))
    return out.transpose(1, 2).reshape(B, C, H, W)


def dense_lamamba(m, x):
    s = dense_ss2d(m.ssm, x)
    h = m.norm_attn((x + s).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return s + dense_window_attention(m.attn, h)


def perturb_(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.mark.parametrize('size', [(13, 21), (1, 1), (2, 7), (6, 6)])
@pytest.mark.parametrize('init', ['mamba', 'simple'])
def test_ss2d_matches_sequential_scan(size, init):
    m = perturb_(SS2DMixer(8, d_state=4, init=init, chunk_size=8))
    compare_with_reference(m, dense_ss2d, torch.randn(2, 8, *size))


@pytest.mark.parametrize('size,shift', [((13, 21), 0), ((13, 21), 2), ((3, 5), 2), ((8, 8), 2)])
def test_lamamba_matches_dense_reference(size, shift):
    m = perturb_(LaMambaMixer(16, num_heads=2, window_size=4, shift_size=shift, d_state=4,
                              chunk_size=8))
    compare_with_reference(m, dense_lamamba, torch.randn(2, 16, *size))


@pytest.mark.parametrize('cls', [SS2DMixer, LaMambaMixer])
def test_bf16_close_to_fp32(cls):
    compare_bf16(cls(16, num_heads=2), torch.randn(2, 16, 13, 21))
