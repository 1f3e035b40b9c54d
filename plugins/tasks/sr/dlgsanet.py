"""DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image SR.

Li et al., ICCV 2023, arXiv 2301.02031. Residual hybrid dynamic-Transformer groups (RHDTG) of
hybrid dynamic-Transformer blocks (HDTB), each an MHDLSA layer followed by a SparseGSA layer:

- **MHDLSA** (Sec. 3.2): ``1x1 -> dynamic depth-wise 7x7 conv -> 1x1``; the depth-wise kernel is
  predicted **per pixel** by a small hyper-network (1x1 reduce by 4 -> depth-wise 7x7 -> 1x1 to
  ``7 * 7 * C / group_channels`` weights), shared by ``group_channels`` consecutive channels.
  The official code runs it with a cupy CUDA kernel; here it is plain PyTorch
  (:func:`dynamic_depthwise_conv`), CPU or GPU, forward and backward.
- **SparseGSA** (Sec. 3.3): Restormer's channel ("transposed") attention, L2-normalised q and k
  with a learned temperature, with **ReLU instead of softmax**, so that only positive similarities
  aggregate features. At test time it runs on overlapping windows (TLC, Chu et al. ECCV 2022;
  ``tlc_kernel`` 96 / 72 / 48 for x2 / x3 / x4), averaged back.

Each layer is pre-norm (LayerNorm over channels) with Restormer's gated-dconv FFN (GDFN). The
input has the DIV2K RGB mean removed and the output is reconstructed by one conv + pixel shuffle.
"""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from plugins.registry import MODELS
from .net_base import SRNetwork, pixel_shuffle_tail

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, kernel_size: int,
                           impl: str = 'shift') -> torch.Tensor:
    """Depth-wise convolution with a different kernel at every pixel (zero padding, stride 1).

    Args:
        x: (B, C, H, W).
        weight: (B, G, k * k, H, W): kernel of group ``g`` at each pixel; channel ``c`` uses the
            kernel of group ``c // (C / G)``.
        impl: ``'shift'`` sums ``k * k`` shifted products (memory of one feature map);
            ``'unfold'`` gathers all neighbourhoods first (``k * k`` times the memory, the
            textbook form). Both give the same numbers.

    ``out[b, c, i, j] = sum_{u, v} weight[b, g(c), u * k + v, i, j] * x[b, c, i + u - p, j + v - p]``
    with ``p = (k - 1) // 2``.
    """
    b, c, h, w = x.shape
    g = weight.shape[1]
    if c % g:
        raise ValueError(f'channels ({c}) must be a multiple of the kernel groups ({g})')
    if weight.shape != (b, g, kernel_size * kernel_size, h, w):
        raise ValueError(f'weight must be (B, G, k*k, H, W) = {(b, g, kernel_size ** 2, h, w)}, '
                         f'got {tuple(weight.shape)}')
    pad = (kernel_size - 1) // 2
    if impl == 'unfold':
        cols = F.unfold(x, kernel_size, padding=pad)  # b (c k k) (h w)
        cols = cols.view(b, g, c // g, kernel_size * kernel_size, h, w)
        return (cols * weight.unsqueeze(2)).sum(3).view(b, c, h, w)
    if impl != 'shift':
        raise ValueError(f"impl must be 'shift' or 'unfold', got {impl!r}")
    xp = F.pad(x, (pad, pad, pad, pad)).view(b, g, c // g, h + 2 * pad, w + 2 * pad)
    out = x.new_zeros(b, g, c // g, h, w)
    for u in range(kernel_size):
        for v in range(kernel_size):
            out = out + xp[..., u:u + h, v:v + w] * weight[:, :, u * kernel_size + v].unsqueeze(2)
    return out.view(b, c, h, w)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GDFN(nn.Module):
    """Restormer's gated-dconv feed-forward: 1x1 -> dw3x3 -> GELU(x1) * x2 -> 1x1."""

    def __init__(self, dim: int, expansion: float = 2.) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class DynamicDepthwiseConv(nn.Module):
    """Per-pixel depth-wise kernels predicted from the input (the 'I-Dynamic' conv)."""

    def __init__(self, dim: int, kernel_size: int = 7, group_channels: int = 6,
                 reduction: int = 4, impl: str = 'shift') -> None:
        super().__init__()
        if dim % group_channels:
            raise ValueError(f'dim ({dim}) must be a multiple of group_channels '
                             f'({group_channels})')
        self.kernel_size = kernel_size
        self.groups = dim // group_channels
        self.impl = impl
        hidden = dim // reduction
        self.reduce = nn.Conv2d(dim, hidden, 1)
        self.context = nn.Conv2d(hidden, hidden, kernel_size, 1, kernel_size // 2, groups=hidden)
        self.to_kernel = nn.Conv2d(hidden, kernel_size ** 2 * self.groups, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        weight = self.to_kernel(self.context(self.reduce(x)))
        weight = weight.view(b, self.groups, self.kernel_size ** 2, h, w)
        return dynamic_depthwise_conv(x, weight, self.kernel_size, self.impl)


class MHDLSA(nn.Module):
    """Multi-head dynamic local self-attention: 1x1 -> dynamic depth-wise conv -> 1x1."""

    def __init__(self, dim: int, kernel_size: int = 7, group_channels: int = 6,
                 dynamic: bool = True, impl: str = 'shift') -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1, bias=False)
        if dynamic:
            self.dynamic = DynamicDepthwiseConv(dim, kernel_size, group_channels, impl=impl)
        else:  # the paper's static ablation
            self.dynamic = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)
        self.proj_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.dynamic(self.proj_in(x)))


def tlc_positions(length: int, kernel: int) -> List[int]:
    """Window starts of TLC along one dimension: ``ceil(length / kernel)`` windows, evenly
    spaced, the last one flush with the border (TLC's ``grids``)."""
    kernel = min(length, kernel)
    num = (length - 1) // kernel + 1
    step = kernel if num == 1 else math.ceil((length - kernel) / (num - 1) - 1e-8)
    starts, i = [], 0
    while i < length:
        if i + kernel >= length:
            starts.append(length - kernel)
            break
        starts.append(i)
        i += step
    return starts


class SparseGSA(nn.Module):
    """Sparse global self-attention: channel attention with ReLU in place of softmax.

    ``attn = ReLU(normalize(q) normalize(k)^T * temperature)``, ``out = attn v`` per head over
    (C / heads) x (C / heads) channel similarities. With ``tlc_kernel`` set, evaluation runs it
    in overlapping windows of that size (TLC), so that the statistics match training crops.
    """

    def __init__(self, dim: int, num_heads: int = 6, tlc_kernel: Optional[int] = 48,
                 activation: str = 'relu') -> None:
        super().__init__()
        self.num_heads = num_heads
        self.tlc_kernel = tlc_kernel
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        acts = dict(relu=nn.ReLU(), gelu=nn.GELU(), sigmoid=nn.Sigmoid(), softmax=nn.Softmax(-1))
        if activation not in acts:
            raise ValueError(f'activation must be one of {sorted(acts)}, got {activation!r}')
        self.act = acts[activation]

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        b, c3, h, w = qkv.shape
        # b (3 heads c) h w -> 3 b heads c (h w)
        q, k, v = qkv.reshape(b, 3, self.num_heads, c3 // 3 // self.num_heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = self.act((q @ k.transpose(-2, -1)) * self.temperature)
        return (attn @ v).reshape(b, c3 // 3, h, w)

    def attend_tlc(self, qkv: torch.Tensor) -> torch.Tensor:
        b, c3, h, w = qkv.shape
        k1, k2 = min(h, self.tlc_kernel), min(w, self.tlc_kernel)
        tops, lefts = tlc_positions(h, k1), tlc_positions(w, k2)
        windows = torch.cat([qkv[:, :, i:i + k1, j:j + k2] for i in tops for j in lefts])
        outs = self.attend(windows).split(b)
        out = qkv.new_zeros(b, c3 // 3, h, w)
        count = qkv.new_zeros(1, 1, h, w)
        for n, (i, j) in enumerate((i, j) for i in tops for j in lefts):
            out[:, :, i:i + k1, j:j + k2] += outs[n]
            count[:, :, i:i + k1, j:j + k2] += 1
        return out / count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.training or not self.tlc_kernel:
            return self.project_out(self.attend(qkv))
        return self.project_out(self.attend_tlc(qkv))


class MHDLSALayer(nn.Module):
    """``x + MHDLSA(LN(x))``, then ``x + GDFN(LN(x))``."""

    def __init__(self, dim, kernel_size, group_channels, ffn_expansion, dynamic, impl):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.mhdlsa = MHDLSA(dim, kernel_size, group_channels, dynamic, impl)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GDFN(dim, ffn_expansion)

    def forward(self, x):
        x = x + self.mhdlsa(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class SparseGSALayer(nn.Module):
    """``x + SparseGSA(LN(x))``, then ``x + GDFN(LN(x))``."""

    def __init__(self, dim, num_heads, ffn_expansion, tlc_kernel, activation):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = SparseGSA(dim, num_heads, tlc_kernel, activation)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GDFN(dim, ffn_expansion)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class ResidualHybridGroup(nn.Module):
    """RHDTG: ``blocks`` HDTBs (MHDLSA layer + SparseGSA layer), a 3x3 conv, a residual."""

    def __init__(self, dim, blocks, kernel_size, group_channels, num_heads, ffn_expansion,
                 dynamic, tlc_kernel, activation, impl):
        super().__init__()
        layers = []
        for _ in range(blocks):
            layers.append(MHDLSALayer(dim, kernel_size, group_channels, ffn_expansion, dynamic,
                                      impl))
            layers.append(SparseGSALayer(dim, num_heads, ffn_expansion, tlc_kernel, activation))
        self.layers = nn.Sequential(*layers)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x):
        return x + self.conv(self.layers(x))


@MODELS.register_module()
class DLGSANet(SRNetwork):
    """DLGSANet with presets ``arch='tiny' | 'light' | 'large'`` (or a dict).

    Presets (official configs): tiny = 48 channels, 3 groups x 3 blocks; light = 48, 4 x 3;
    large = 90, 6 x 4; all with 7x7 dynamic kernels shared by 6 channels, 6 SparseGSA heads,
    GDFN expansion 2. Parameters x2: tiny 565,710, light 745,188.

    Args:
        arch: preset name or dict with ``dim``, ``groups``, ``blocks``.
        upscale: 2, 3 or 4.
        tlc_kernel: TLC window of SparseGSA at test time (``None``: global); default by scale
            as the official configs (96 / 72 / 48 for x2 / x3 / x4).
        kernel_size, group_channels: MHDLSA's dynamic kernel size and channels per kernel
            (official ``window_size`` and ``idynamic_num_heads``).
        num_heads: SparseGSA heads (official ``restormer_num_heads``).
        dynamic_impl: ``'shift'`` or ``'unfold'``, see :func:`dynamic_depthwise_conv`.
    """
    converter = 'dlgsanet'
    arch_zoo = dict(tiny=dict(dim=48, groups=3, blocks=3),
                    light=dict(dim=48, groups=4, blocks=3),
                    large=dict(dim=90, groups=6, blocks=4))
    default_tlc_kernel = {1: 96, 2: 96, 3: 72, 4: 48}

    def __init__(self,
                 arch='tiny',
                 upscale: int = 2,
                 in_channels: int = 3,
                 kernel_size: int = 7,
                 group_channels: int = 6,
                 num_heads: int = 6,
                 ffn_expansion: float = 2.,
                 dynamic: bool = True,
                 tlc_kernel: Optional[int] = -1,
                 activation: str = 'relu',
                 dynamic_impl: str = 'shift',
                 init_cfg=None) -> None:
        super().__init__(upscale, init_cfg)
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise KeyError(f'DLGSANet has no preset {arch!r}; presets: '
                               f'{sorted(self.arch_zoo)} (or a dict with dim, groups, blocks)')
            arch = self.arch_zoo[arch.lower()]
        missing = {'dim', 'groups', 'blocks'} - set(arch)
        if missing:
            raise KeyError(f'DLGSANet arch dict lacks {sorted(missing)}')
        dim = arch['dim']
        if tlc_kernel == -1:
            tlc_kernel = self.default_tlc_kernel[upscale]
        self.register_buffer('rgb_mean', torch.tensor(
            DIV2K_RGB_MEAN if in_channels == 3 else (0.,) * in_channels).view(1, -1, 1, 1),
            persistent=False)
        self.conv_first = nn.Conv2d(in_channels, dim, 3, 1, 1, bias=False)
        self.groups = nn.Sequential(*[
            ResidualHybridGroup(dim, arch['blocks'], kernel_size, group_channels, num_heads,
                                ffn_expansion, dynamic, tlc_kernel, activation, dynamic_impl)
            for _ in range(arch['groups'])])
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        self.upsample = pixel_shuffle_tail(dim, in_channels, upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - self.rgb_mean
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.groups(feat)) + feat
        return self.upsample(feat) + self.rgb_mean
