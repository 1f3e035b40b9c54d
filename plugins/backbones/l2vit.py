"""L2ViT: "The Linear Attention Resurrection in Vision Transformer" (Zheng; arXiv 2501.16182).

Four stages whose blocks alternate (the paper's architecture figure) a local window attention block
(LWA: Swin's window softmax attention in 7x7 windows, no shift, no relative bias) and a linear
global attention block (LGA: the paper's enhanced linear global attention, ReLU-kernel linear
attention over the whole map with a learnable per-head temperature and a normaliser clamped at 100,
followed by its local concentration module: ``x + LCM(LN(x))``, LCM = DWConv7x7 - GELU - BN -
DWConv7x7). Every block starts with a depth-wise 3x3 conditional position encoding (CPE); the LWA
block has a second one before its MLP. A convolutional stem (two 3x3 stride-2 convs with BN, ReLU
between) + LayerNorm, LayerNorm + 2x2 stride-2 convolution between stages, a LayerNorm on every
output (the official detection / segmentation backbone's ``norm0..3``). Linear in tokens.

Any H, W, as the official code: the stem pads the image to a multiple of 4, each down-sampling pads
its map to even sizes, the window mixer zero-pads its (normalised) input to window multiples and
crops, so each output is ``ceil(H / stride)``. Parity with the official model (``L2ViT_Tiny / Small
/ Base`` of ``classification/models/l2vit.py``) run beside this one with the same weights converted
by the ``l2vit`` converter (fp32, eval, the official initialisation with random BN statistics,
LayerNorm / BN affines and temperatures; stage outputs without the output norms), max abs diff
over the four stages at 224x224, 97x131 and 33x250: 7.2e-6 (Tiny), 7.6e-6 (Small), 1.2e-5 (Base).
The parameter counts equal the official code's (ImageNet head included).
"""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..mixers.enhanced_linear_attention import EnhancedLinearAttention
from ..mixers.window import ShiftedWindowAttention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, NormConvDownsample, TokenMlp


class ConvPosEnc(nn.Module):
    """Conditional position encoding: ``x + DWConv3x3(x)`` on an NCHW map."""

    def __init__(self, dim, kernel_size=3):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x):
        return x + self.proj(x)


class L2ViTStem(nn.Module):
    """The official ``ConvStem`` ('2L'): conv3x3/2 - BN - ReLU - conv3x3/2 - BN, then LayerNorm
    over channels; the image is zero-padded (bottom / right) to a multiple of 4 first."""

    def __init__(self, in_channels, dim, norm_cfg=dict(type='BN')):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, dim // 2, 3, 2, 1), build_norm_layer(norm_cfg, dim // 2)[1],
            nn.ReLU(), nn.Conv2d(dim // 2, dim, 3, 2, 1), build_norm_layer(norm_cfg, dim)[1])
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x):
        h, w = x.shape[2:]
        return self.norm(self.proj(F.pad(x, (0, -w % 4, 0, -h % 4))))


class LocalWindowBlock(nn.Module):
    """LWA block, NCHW in and out: ``x = CPE1(x); x = x + WinAttn(LN(x)); x = CPE2(x);
    x = x + MLP(LN(x))``."""

    def __init__(self, dim, num_heads, window_size=7, mlp_ratio=4., drop_path=0.,
                 act_cfg=dict(type='GELU')):
        super().__init__()
        self.cpe1 = ConvPosEnc(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, num_heads, window_size, shift_size=0,
                                           rel_pos_bias=False)
        self.cpe2 = ConvPosEnc(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.cpe1(x)
        attn = self.attn(self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        x = self.cpe2(x + self.drop_path(attn))
        x = x.permute(0, 2, 3, 1)  # B C H W -> B H W C
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


class LinearGlobalBlock(nn.Module):
    """LGA block, NCHW in and out: ``x = CPE(x); x = x + LinAttn(LN(x)); x = x + LCM(LN(x));
    x = x + MLP(LN(x))``. The LCM acts on the residual stream after the attention (the official
    block), so the block calls the mixer's :meth:`~EnhancedLinearAttention.attention`,
    ``lcm_norm`` and ``lcm`` itself."""

    def __init__(self, dim, num_heads, mlp_ratio=4., drop_path=0., lcm_kernel_size=7,
                 act_cfg=dict(type='GELU')):
        super().__init__()
        self.cpe1 = ConvPosEnc(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EnhancedLinearAttention(dim, num_heads, lcm_kernel_size=lcm_kernel_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.cpe1(x)
        x = x + self.drop_path(self.attn.attention(
            self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)))
        x = x + self.drop_path(self.attn.lcm(self.attn.lcm_norm(x.permute(0, 2, 3, 1))
                                             .permute(0, 3, 1, 2)))
        x = x.permute(0, 2, 3, 1)  # B C H W -> B H W C
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


class L2ViTStage(nn.Module):
    """Down-sampling (the stem for stage 0), blocks (LWA at even, LGA at odd positions), and the
    output LayerNorm."""

    def __init__(self, downsample, blocks, dim, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim) if out_norm else nn.Identity()


@MODELS.register_module()
class L2ViT(AttentionBackbone):
    """L2ViT backbone, presets Tiny / Small / Base (29M / 50M / 89M with the ImageNet classifier,
    as the official release counts).

    Example::

        backbone=dict(type='L2ViT', arch='tiny', drop_path_rate=0.1,
                      init_cfg=dict(type='Pretrained',
                                    checkpoint='L2ViT-Tiny-checkpoint-best-ema.pth'))

    Args:
        arch: 'tiny' | 'small' | 'base' (aliases 't', 's', 'b') or a dict with ``embed_dims``,
            ``depths``, ``num_heads``.
        window_size: side of the local attention windows (7; the official 384 model uses 12).
            Not a size constraint.
        mlp_ratio: hidden width of the MLPs (4).
        lcm_kernel_size: kernel of the LCM's depth-wise convolutions (7).
        out_norm: a LayerNorm on every returned map (the official detection / segmentation
            backbone); False returns the raw stage outputs.
        norm_cfg: the BatchNorm of the stem (the LCM's BatchNorm is the mixer's).
        act_cfg: activation of the MLPs (GELU).
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        'tiny': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2],
                     num_heads=[3, 6, 12, 24]),
        'small': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2],
                      num_heads=[3, 6, 12, 24]),
        'base': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2],
                     num_heads=[4, 8, 16, 32]),
    }
    arch_zoo.update(t=arch_zoo['tiny'], s=arch_zoo['small'], b=arch_zoo['base'])
    converter = 'l2vit'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, window_size=7, mlp_ratio=4.,
                 lcm_kernel_size=7, out_norm=True, norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='GELU'), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths, heads = s['embed_dims'], s['depths'], s['num_heads']
        if not len(dims) == len(depths) == len(heads):
            raise ValueError(f'L2ViT arch: embed_dims {dims}, depths {depths} and num_heads '
                             f'{heads} must have one entry per stage')
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            downsample = (L2ViTStem(in_channels, dim, norm_cfg) if i == 0
                          else NormConvDownsample(dims[i - 1], dim))
            blocks = [LocalWindowBlock(dim, heads[i], window_size, mlp_ratio, rates[i][j], act_cfg)
                      if j % 2 == 0 else
                      LinearGlobalBlock(dim, heads[i], mlp_ratio, rates[i][j], lcm_kernel_size,
                                        act_cfg)
                      for j in range(depth)]
            norm = out_norm and self.is_returned(i, len(dims))
            stages.append(L2ViTStage(downsample, blocks, dim, norm))
        self.stages = nn.ModuleList(stages)
        self.out_norm = out_norm
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(stage.norm(x))
        return outs

    def init_weights(self):
        if self.init_cfg is None:  # the official initialisation (detection backbone)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
