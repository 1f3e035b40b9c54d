"""Benchmark cases of the selective-scan mixers (SS2D of Mamba-YOLO / VMamba, LaMamba); peer: the
same modules with the naive sequential selective scan (``selective_scan_ref`` semantics, one step
per token), the only CPU formulation the official code has."""
import torch

from plugins.mixers.lamamba import LaMambaMixer
from plugins.mixers.ss2d import SS2DMixer
from plugins.ops.selective_scan import cross_merge, cross_scan, selective_scan_sequential

from . import MixerCase


def _sequential_scan(m: SS2DMixer, x):
    B, D, H, W = x.shape
    L = H * W
    xs = cross_scan(x)
    x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, m.x_proj_weight)
    dts, Bs, Cs = x_dbl.split([m.dt_rank, m.d_state, m.d_state], dim=2)
    dts = torch.einsum('bkrl,kdr->bkdl', dts, m.dt_projs_weight)
    ys = selective_scan_sequential(xs.reshape(B, -1, L), dts.reshape(B, -1, L),
                                   -torch.exp(m.A_logs), Bs, Cs, m.Ds,
                                   delta_bias=m.dt_projs_bias.reshape(-1), delta_softplus=True)
    return cross_merge(ys.view(B, m.K, D, L), H, W)


def ss2d_sequential(m: SS2DMixer):
    def run(x):
        B, C, H, W = x.shape
        xi, z = m.in_proj(x).chunk(2, dim=1)
        y = _sequential_scan(m, m.act(m.conv2d(xi)))
        y = m.out_norm(y.transpose(1, 2)).transpose(1, 2).reshape(B, -1, H, W)
        return m.out_proj(y * m.act(z))
    return run


def lamamba_sequential(m: LaMambaMixer):
    ssm = ss2d_sequential(m.ssm)

    def run(x):
        s = ssm(x)
        h = m.norm_attn((x + s).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return s + m.attn(h)
    return run


_NOTE = ('the sequential peer keeps B x 4 x d_inner x d_state x N tensors and steps through every '
         'token (about 12 GB and minutes for fwd+bwd at 200x304), so the case stops at 100x152')

CASES = [
    MixerCase('SS2DMixer', 'Mamba-YOLO (2406.05835) / VMamba (2401.10166)',
              lambda dim, heads: SS2DMixer(dim, heads), 'linear',
              'sequential selective scan (selective_scan_ref)', ss2d_sequential,
              max_tokens=100 * 152, note=_NOTE),
    MixerCase('LaMambaMixer w8', 'LaMamba-Diff (2408.02615)',
              lambda dim, heads: LaMambaMixer(dim, heads, window_size=8), 'linear',
              'SS2D with the sequential scan + the same window attention', lamamba_sequential,
              max_tokens=100 * 152, note=_NOTE),
]
