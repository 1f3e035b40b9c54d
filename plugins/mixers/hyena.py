"""Hyena N-D token mixer, 2-D: "Multi-Dimensional Hyena for Spatial Inductive Bias" (Zimerman &
Wolf, AISTATS 2024).

The Hyena recurrence (Hyena, Poli et al. 2023, Def. 3.1) with 2-D long convolutions: the input
is projected to ``order + 1`` maps and sharpened by a 3x3 depth-wise conv; then
``v <- h_o * (v . x_o) + D_o (v . x_o)`` for ``o = order-1 .. 1`` and ``y = v . x_0``, where each
``h_o`` is a filter as large as the map. The filter is implicit (the paper's Hyena N-D filter
section): positional features of each axis (time plus sin/cos bands), a small MLP with sine
activations, an exponential decay window; by default (``filter_mode='product'``) the 2-D filter
is the outer product of one such filter per axis, ``h[i, j] = h_x[i] h_y[j]``; with ``'2d'`` one MLP
reads the concatenated features of both axes.

Differences from the released ``hyena2d.py`` (which asserts a square map equal to ``l_max``):

* any ``H x W``: the learnable positional features (``l_max`` long) are resampled linearly along
  each axis to H and W (``align_corners``: the ends stay at t = 0 and 1), and the normalisation
  ``1 / (2 l_max)`` of the released FFT convolution becomes ``l_max / (2 H W)``: the same at
  ``H = W = l_max``, and a filter integral that stays the same across resolutions;
* CPU-safe: the 'symmetric' window builds its indices on the input's device (the released code
  calls ``.cuda()``);
* directional modes 'standard', 'seq', '4dir', '4dirp' (not 'parallel', nor the direct
  parametrisation).

Cost: ``O(N log N)`` per channel (FFT over ``~2H x 2W``), memory ``O(N)`` per channel.
Parameter names match ``HyenaOperator2d``.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.fft_conv import fft_causal_conv2d, kernel_spectrum
from ..registry import MODELS


class Sin(nn.Module):
    """``sin(freq * x)`` with a learnable frequency per channel (Hyena's filter activation)."""

    def __init__(self, dim: int, w: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class AxisPositionalFeatures(nn.Module):
    """Hyena's positional features of a length-``l_max`` axis: ``(t, cos(f w), -sin(f w))`` bands.

    ``z`` (1, l_max, emb_dim) is learnable (as in Hyena); ``t = linspace(0, 1, l_max)``.
    :meth:`forward` resamples both to a length L.
    """

    def __init__(self, emb_dim: int, l_max: int):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f'emb_dim must be odd and >= 3 (time, cos, sin), got {emb_dim}')
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, l_max)[None, :, None]                     # 1 L 1
        w = 2 * math.pi * torch.linspace(0, l_max - 1, l_max)[None, :, None] / l_max
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w)
        self.l_max = l_max
        self.z = nn.Parameter(torch.cat([t, z.real, z.imag], dim=-1))
        self.register_buffer('t', t)

    def forward(self, length: int):
        if length == self.l_max:
            return self.z, self.t
        z = F.interpolate(self.z.transpose(1, 2), size=length, mode='linear',
                          align_corners=True).transpose(1, 2)
        t = torch.linspace(0, 1, length, device=self.z.device, dtype=self.z.dtype)[None, :, None]
        return z, t


class ExponentialModulation(nn.Module):
    """Hyena's decay window ``h * (exp(-t |delta_c|) + shift)``, decays spread over channels.

    Deltas run from ``log(target) / slow_decay_pct`` to ``log(target) / fast_decay_pct``;
    'standard' keeps them fixed (buffers), 'learn' learns them and a shift, 'no' disables it.
    """

    def __init__(self, d_model: int, window_mode: str = 'standard', fast_decay_pct: float = 0.3,
                 slow_decay_pct: float = 1.5, target: float = 1e-2, names=('deltas',)):
        super().__init__()
        self.window_mode = window_mode
        self.names = names
        deltas = torch.linspace(math.log(target) / slow_decay_pct,
                                math.log(target) / fast_decay_pct, d_model)[None, None]
        self.shift = 0.0
        for name in (() if window_mode == 'no' else names):
            if window_mode == 'standard':
                self.register_buffer(name, deltas.clone())
            else:  # 'learn', 'symmetric'
                setattr(self, name, nn.Parameter(deltas.clone()))
        if window_mode in ('learn', 'symmetric'):
            self.shift = nn.Parameter(torch.rand(deltas.shape))

    def decay(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """``exp(-t |delta|)`` for t (1, L, 1): (L, d)."""
        return torch.exp(-t * getattr(self, name).abs())[0]

    def offset(self):
        """The shift added to the decay: 0 or a (d,) vector."""
        return self.shift.view(-1) if isinstance(self.shift, torch.Tensor) else self.shift


class HyenaFilter2d(nn.Module):
    """The implicit filter of Hyena N-D: features -> sine MLP -> window, per axis or joint."""

    def __init__(self, d_model: int, l_max: int, emb_dim: int = 3, order: int = 16,
                 w: float = 1.0, num_inner_mlps: int = 2, filter_mode: str = 'product',
                 window_mode: str = 'standard', **modulation_args):
        super().__init__()
        self.filter_mode = filter_mode
        self.window_mode = window_mode
        self.bias = nn.Parameter(torch.randn(d_model))
        self.pos_emb = AxisPositionalFeatures(emb_dim, l_max)
        act = Sin(order, w)                           # one activation shared by every layer

        def mlp(in_dim):
            layers = [nn.Linear(in_dim, order), act]
            for _ in range(num_inner_mlps):
                layers += [nn.Linear(order, order), act]
            layers.append(nn.Linear(order, d_model, bias=False))
            return nn.Sequential(*layers)

        if filter_mode == 'product':
            if window_mode == 'symmetric':
                raise ValueError("window_mode 'symmetric' needs filter_mode '2d' (as in Hyena N-D)")
            self.Ximplicit_filter = mlp(emb_dim)
            self.Yimplicit_filter = mlp(emb_dim)
            self.Xmodulation = ExponentialModulation(d_model, window_mode, **modulation_args)
            self.Ymodulation = ExponentialModulation(d_model, window_mode, **modulation_args)
        elif filter_mode == '2d':
            self.implicit_filter = mlp(2 * emb_dim)
            names = ('deltas',) if window_mode == 'symmetric' else ('Xdeltas', 'Ydeltas')
            self.modulation = ExponentialModulation(d_model, window_mode, names=names,
                                                    **modulation_args)
        else:
            raise ValueError(f"filter_mode must be 'product' or '2d', got {filter_mode!r}")

    def forward(self, H: int, W: int) -> torch.Tensor:
        """The filters on an ``H x W`` map: (H, W, d_model)."""
        zx, tx = self.pos_emb(H)
        zy, ty = self.pos_emb(W)
        if self.filter_mode == 'product':
            hx = self.Ximplicit_filter(zx)[0]                              # H d
            hy = self.Yimplicit_filter(zy)[0]                              # W d
            if self.window_mode != 'no':
                hx = hx * (self.Xmodulation.decay('deltas', tx) + self.Xmodulation.offset())
                hy = hy * (self.Ymodulation.decay('deltas', ty) + self.Ymodulation.offset())
            return hx[:, None, :] * hy[None, :, :]
        feats = torch.cat([zx[0, :, None, :].expand(H, W, -1),
                           zy[0, None, :, :].expand(H, W, -1)], dim=-1)   # H W 2e
        h = self.implicit_filter(feats)                                    # H W d
        mod = self.modulation
        if self.window_mode == 'no':
            return h
        if self.window_mode == 'symmetric':
            i = torch.arange(H, device=h.device, dtype=h.dtype)
            j = torch.arange(W, device=h.device, dtype=h.dtype)
            decay = torch.exp(-(i[:, None] + j[None, :])[..., None] * mod.deltas.abs().view(-1))
        else:
            decay = mod.decay('Xdeltas', tx)[:, None, :] * mod.decay('Ydeltas', ty)[None]
        return h * (decay + mod.offset())


@MODELS.register_module()
class HyenaMixer2d(nn.Module):
    """Hyena N-D operator on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: unused (Hyena has no heads); accepted for the mixer interface.
        l_max: side of the grid the filter's positional features are defined on (the training
            grid, e.g. 14 for DeiT at 224 / 16).
        order: depth of the Hyena recurrence (2).
        filter_order: width of the filter MLP (64).
        filter_mode: 'product' (per-axis filters, the default of Hyena N-D) or '2d'.
        window_mode: 'standard', 'learn', 'no' or 'symmetric' (the latter with '2d' only).
        directional_mode: 'standard', 'seq' (second filter flipped), '4dir' / '4dirp' (the four
            flips of the input, mixed by a linear over directions or over channels).
        emb_dim, w, num_inner_mlps: of the filter (3, 1, 2).
    """

    def __init__(self, dim: int, num_heads: int = 1, l_max: int = 14, order: int = 2,
                 filter_order: int = 64, filter_mode: str = 'product',
                 window_mode: str = 'standard', directional_mode: str = 'standard',
                 emb_dim: int = 3, w: float = 1.0, num_inner_mlps: int = 2):
        super().__init__()
        if order < 2:
            raise ValueError(f'HyenaMixer2d: order must be >= 2, got {order}')
        if window_mode == 'symettric':  # the released spelling
            window_mode = 'symmetric'
        if directional_mode not in ('standard', 'seq', '4dir', '4dirp'):
            raise ValueError("HyenaMixer2d: directional_mode must be 'standard', 'seq', '4dir' "
                             f"or '4dirp', got {directional_mode!r}")
        self.dim = dim
        self.l_max = l_max
        self.order = order
        self.directional_mode = directional_mode
        inner = dim * (order + 1)
        self.in_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(dim, dim)
        self.short_filter = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        if directional_mode == '4dir':
            self.linear_mix = nn.Linear(4, 1)
        elif directional_mode == '4dirp':
            self.linear_mix = nn.Linear(4 * dim, dim)
        self.filter_fn = HyenaFilter2d(dim * (order - 1), l_max, emb_dim, filter_order, w,
                                       num_inner_mlps, filter_mode, window_mode)

    def fft_scale(self, H: int, W: int) -> float:
        """``1 / (2 l_max)`` at ``H = W = l_max`` (the released normalisation), else
        ``l_max / (2 H W)``: the sum over the filter keeps its weight across resolutions."""
        return self.l_max / (2.0 * H * W)

    @staticmethod
    def _flip4(t: torch.Tensor) -> torch.Tensor:
        """Hyena's ``augment``: the map and its three flips, stacked on the batch."""
        return torch.cat([t, t.flip(-1, -2), t.flip(-1), t.flip(-2)], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        u = self.in_proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)       # B inner H W
        u = self.short_filter(u)
        *gates, v = u.split(C, dim=1)                                      # order + 1 maps
        k = self.filter_fn(H, W).permute(2, 0, 1).reshape(self.order - 1, C, H, W)
        bias = self.filter_fn.bias.view(self.order - 1, C)
        scale = self.fft_scale(H, W)
        four = self.directional_mode in ('4dir', '4dirp')
        if four:
            v = self._flip4(v)
        for o, gate in enumerate(reversed(gates[1:])):
            v = v * (self._flip4(gate) if four else gate)
            flip = self.directional_mode == 'seq' and o == 0
            if flip:
                v = v.flip(-1, -2)
            conv = fft_causal_conv2d(v, k[o], k_spectrum=kernel_spectrum(k[o], H, W, scale))
            v = conv + v * bias[o].view(C, 1, 1).to(v.dtype)
            if flip:
                v = v.flip(-1, -2)
        y = v * (self._flip4(gates[0]) if four else gates[0])             # (4)B C H W
        y = y.permute(0, 2, 3, 1)                                          # b h w c
        if four:
            y = torch.stack([y[:B], y[B:2 * B].flip(1, 2), y[2 * B:3 * B].flip(2),
                             y[3 * B:].flip(1)], dim=-1)                   # B H W C 4
            y = self.linear_mix(y).squeeze(-1) if self.directional_mode == '4dir' \
                else self.linear_mix(y.flatten(-2))
        return self.out_proj(y).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, l_max={self.l_max}, order={self.order}, '
                f'directional_mode={self.directional_mode!r}')
