"""HaloNet: "Scaling Local Self-Attention for Parameter Efficient Visual Backbones" (Vaswani,
Ramachandran, Srinivas, Parmar, Hechtman, Shlens; CVPR 2021, arXiv 2103.12731).

ResNet-style bottleneck networks in which the 3x3 convolution of some blocks is replaced by
blocked local self-attention with halos (Sec. 2.2, Fig. 3): ``b x b`` query blocks attend to their
block grown by ``h`` pixels, with factorised relative position logits. A down-sampling attention
block strides its queries (Sec. 2.3 "attention down-sampling"). There is no official code; the
presets are timm's ``halonet26t`` / ``halonet50ts`` (``byoanet.py``), the reference implementation:
a three-conv "tiered" stem + max-pool, then bottleneck stages of 256/512/1024/2048 channels with
halo blocks in the last stages. Weights of timm load as they are (the ``halonet`` converter).

Any H, W: timm needs multiples of ``block_size x 16`` (256 for the presets' attention at strides
16 and 32); here each attention pads its map to block multiples and crops, so no input padding is
needed. Parity with timm 1.0 with the same weights (fp32, eval, 256x256, random BatchNorm
statistics): max abs diff 0 (bit-identical) on all four stage outputs of both presets, re-checked
by tests/backbones/test_halonet.py whenever timm is installed.
"""
from typing import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from ..mixers.halo import HaloAttention
from ..registry import MODELS
from .base import AttentionBackbone


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _Residual(nn.Module):
    """Shared tail of both blocks: ``act(drop_path(branch) + shortcut(x))``; the shortcut is a
    strided 1x1 conv + BN when the shape changes (timm's ``downsample='conv1x1'``)."""

    def _build_shortcut(self, in_channels, out_channels, stride, norm_cfg):
        if in_channels == out_channels and stride == 1:
            return nn.Identity()
        return ConvModule(in_channels, out_channels, 1, stride, bias=False, norm_cfg=norm_cfg,
                          act_cfg=None)

    def forward(self, x):
        return self.act(self.drop_path(self.branch(x)) + self.shortcut(x))


class BottleneckBlock(_Residual):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck, each conv + BN (+ act)."""

    def __init__(self, in_channels, out_channels, stride=1, bottle_ratio=0.25, drop_path=0.,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU')):
        super().__init__()
        mid = _make_divisible(out_channels * bottle_ratio)
        self.shortcut = self._build_shortcut(in_channels, out_channels, stride, norm_cfg)
        self.conv1_1x1 = ConvModule(in_channels, mid, 1, bias=False, norm_cfg=norm_cfg,
                                    act_cfg=act_cfg)
        self.conv2_kxk = ConvModule(mid, mid, 3, stride, 1, bias=False, norm_cfg=norm_cfg,
                                    act_cfg=act_cfg)
        self.conv3_1x1 = ConvModule(mid, out_channels, 1, bias=False, norm_cfg=norm_cfg,
                                    act_cfg=None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = build_activation_layer(act_cfg)

    def branch(self, x):
        return self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))


class HaloBlock(_Residual):
    """1x1 -> halo attention (strided queries when down-sampling) -> BN + act -> 1x1 (Fig. 3;
    timm's ``SelfAttnBlock``)."""

    def __init__(self, in_channels, out_channels, stride=1, bottle_ratio=0.25, drop_path=0.,
                 block_size=8, halo_size=3, num_heads=8, norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='ReLU')):
        super().__init__()
        mid = _make_divisible(out_channels * bottle_ratio)
        self.shortcut = self._build_shortcut(in_channels, out_channels, stride, norm_cfg)
        self.conv1_1x1 = ConvModule(in_channels, mid, 1, bias=False, norm_cfg=norm_cfg,
                                    act_cfg=act_cfg)
        self.self_attn = HaloAttention(mid, num_heads, block_size=block_size,
                                       halo_size=halo_size, stride=stride)
        self.post_attn = build_norm_layer(norm_cfg, mid)[1]
        self.post_act = build_activation_layer(act_cfg)
        self.conv3_1x1 = ConvModule(mid, out_channels, 1, bias=False, norm_cfg=norm_cfg,
                                    act_cfg=None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = build_activation_layer(act_cfg)

    def branch(self, x):
        x = self.self_attn(self.conv1_1x1(x))
        return self.conv3_1x1(self.post_act(self.post_attn(x)))


class TieredStem(nn.Sequential):
    """Three 3x3 conv + BN + act (the first strided) and a 3x3 stride-2 max-pool: stride 4
    (timm's ``stem_type='tiered'``)."""

    def __init__(self, in_channels, channels: Sequence[int], norm_cfg, act_cfg):
        super().__init__()
        prev = in_channels
        for i, ch in enumerate(channels):
            self.add_module(f'conv{i + 1}', ConvModule(prev, ch, 3, 2 if i == 0 else 1, 1,
                                                       bias=False, norm_cfg=norm_cfg,
                                                       act_cfg=act_cfg))
            prev = ch
        self.add_module('pool', nn.MaxPool2d(3, 2, 1))


class HaloStage(nn.Module):
    """The stem (stage 0 only) and the stage's blocks."""

    def __init__(self, stem, blocks):
        super().__init__()
        if stem is not None:
            self.stem = stem
        self.blocks = nn.ModuleList(blocks)


@MODELS.register_module()
class HaloNet(AttentionBackbone):
    """HaloNet backbone, presets ``halonet26t`` (12.48M with the ImageNet classifier) and
    ``halonet50ts`` (22.73M), as timm defines them.

    Example::

        backbone=dict(type='HaloNet', arch='halonet50ts', norm_eval=True, frozen_stages=1,
                      init_cfg=dict(type='Pretrained',
                                    checkpoint='halonet50ts_a1h2_256-f3a3daee.pth'))

    Args:
        arch: 'halonet26t' | 'halonet50ts' or a dict with ``stem_channels``, ``channels`` (per
            stage), ``layouts`` (per stage, a string of ``b`` bottleneck / ``a`` halo-attention
            blocks), ``bottle_ratio``, ``attn`` (per stage: ``block_size``, ``halo_size``,
            ``num_heads``) and ``act`` (activation type).
        norm_cfg: the BatchNorm of every conv and of the post-attention norm.
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        # ResNet26-T layout; halo attention in the last two stages, block 8, halo 2, 8 heads
        'halonet26t': dict(
            stem_channels=[24, 32, 64], channels=[256, 512, 1024, 2048],
            layouts=['bb', 'bb', 'ba', 'aa'], bottle_ratio=0.25, act='ReLU',
            attn=[dict(block_size=8, halo_size=2, num_heads=8)] * 4),
        # ResNet50-T layout, SiLU; halo block 8, halo 3: one in stage 2 (4 heads), every other
        # block of stages 3 and 4 (8 heads)
        'halonet50ts': dict(
            stem_channels=[24, 32, 64], channels=[256, 512, 1024, 2048],
            layouts=['bbb', 'bbba', 'bababa', 'bab'], bottle_ratio=0.25, act='SiLU',
            attn=[dict(block_size=8, halo_size=3, num_heads=8),
                  dict(block_size=8, halo_size=3, num_heads=4),
                  dict(block_size=8, halo_size=3, num_heads=8),
                  dict(block_size=8, halo_size=3, num_heads=8)]),
    }
    converter = 'halonet'

    def __init__(self, arch='halonet26t', in_channels=3, out_indices=(0, 1, 2, 3),
                 frozen_stages=-1, norm_eval=False, drop_path_rate=0., with_cp=False,
                 norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        layouts = s['layouts']
        bad = sorted({t for layout in layouts for t in layout} - {'a', 'b'})
        if bad:
            raise ValueError(f'HaloNet layouts take "b" (bottleneck) and "a" (halo attention) '
                             f'blocks; got {bad} in {layouts}')
        if not len(layouts) == len(s['channels']) == len(s['attn']):
            raise ValueError(f'HaloNet needs one layout, channel count and attn dict per stage; '
                             f'got {len(layouts)}, {len(s["channels"])}, {len(s["attn"])}')
        act_cfg = dict(type=s['act'])
        rates = self.drop_path_rates([len(layout) for layout in layouts])
        prev = s['stem_channels'][-1]
        stages = []
        for i, (layout, ch) in enumerate(zip(layouts, s['channels'])):
            stem = TieredStem(in_channels, s['stem_channels'], norm_cfg, act_cfg) if i == 0 \
                else None
            blocks = []
            for j, kind in enumerate(layout):
                stride = 2 if i > 0 and j == 0 else 1
                common = dict(stride=stride, bottle_ratio=s['bottle_ratio'],
                              drop_path=rates[i][j], norm_cfg=norm_cfg, act_cfg=act_cfg)
                if kind == 'b':
                    blocks.append(BottleneckBlock(prev, ch, **common))
                else:
                    blocks.append(HaloBlock(prev, ch, **common, **s['attn'][i]))
                prev = ch
            stages.append(HaloStage(stem, blocks))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(s['channels'])
        self.stage_strides = [4 * 2**i for i in range(len(layouts))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            if hasattr(stage, 'stem'):
                x = stage.stem(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(x)
        return outs

    def init_weights(self):
        super().init_weights()  # ConvModule: Kaiming convs, unit BN
        if self.init_cfg is None:  # and, as timm (zero_init_last), each residual branch ends at 0
            for m in self.modules():
                if isinstance(m, (BottleneckBlock, HaloBlock)):
                    nn.init.zeros_(m.conv3_1x1.bn.weight)
