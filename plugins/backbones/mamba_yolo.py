"""Mamba-YOLO: "Mamba YOLO: A Simple Baseline for Object Detection with State Space Model" (Wang,
Li, Xu, Zhu, Li; AAAI 2025, arXiv 2406.05835), its ODMamba backbone.

A YOLO backbone whose blocks are state-space models, trained from scratch (no ImageNet weights):
a SimpleStem (two 3x3 stride-2 convs) to stride 4, then four stages of ODSSBlocks, stages 2-4 each
opened by a Vision Clue Merge (space-to-depth, 1x1 conv: down-sampling that keeps every pixel), an
SPPF closing the last one (the official YAMLs put it in the backbone). The ODSSBlock (the official
``VSSBlock``) is ``x = SiLU(BN(conv1x1(x)))``; ``x = x + SS2D(LN(LSBlock(x)))``;
``x = x + RGBlock(LN(x))``: the LSBlock (3x3 depth-wise conv, BN, 1x1, GELU, 1x1, plus the input)
adds locality before the four-direction selective scan (SS2D:
:class:`~plugins.mixers.ss2d.SS2DMixer` with the official simple initialisation), the RGBlock is a
gated MLP whose gated branch has a depth-wise 3x3 conv with a residual (hidden width
``2/3 * mlp_ratio * dim``).

Presets T / B / L are the official YAMLs (``ultralytics/cfg/models/mamba-yolo/Mamba-YOLO-*.yaml``)
after Ultralytics' depth / width scaling: widths ``make_divisible(min(c, max_channels) * width, 8)``
of (128, 256, 512, 1024), depths ``max(round(n * depth), 1)`` of (3, 3, 9, 3); ``d_state = 16``,
``ssm_ratio = 2``, ``mlp_ratio = 4`` (the YAMLs keep the blocks' defaults). Every BatchNorm has
``eps = 1e-3``, ``momentum = 0.03``, as Ultralytics sets them (``initialize_weights``).

Any H, W: the stem's convs give ``ceil(H / 2)``, and Vision Clue Merge zero-pads odd maps by one
row / column (the official slicing needs even sizes), so stage ``i`` has ``ceil(H / 2^(i+2))``.

Parity with the official code (``ultralytics/nn/modules/mamba_yolo.py``, its CUDA scan replaced on
CPU by the official ``selective_scan_ref`` of ``selective_scan/test_selective_scan.py``), the same
weights through :func:`plugins.utils.convert_mamba_yolo.convert_mamba_yolo_detector`, eval mode,
with :class:`~plugins.necks.mamba_yolo_pafpn.MambaYOLOPAFPN` and the YOLOv8 head: T at 640x640 with
every weight jittered (BN statistics, ``A_log`` and all): max abs difference 1.0e-4 on the
backbone's P5 (values up to 12), 2.2e-4 on the neck's maps (up to 12); T at 320: decoded boxes
0.01 px, class probabilities 3e-5. L at 320 with the official initialisation: 1.2e-5 on every map
(values up to 1.2), boxes 9e-5 px; one ODSSBlock alone, jittered: 1.3e-5 on values up to 13.
Differences are fp32 summation order (the chunked scan is exact), amplified by depth.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath

from ..mixers.ss2d import SS2DMixer
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm, ConvNormAct

#: Ultralytics' BatchNorm (``initialize_weights`` sets eps 1e-3, momentum 0.03 on every BN)
YOLO_BN = dict(type='BN', eps=1e-3, momentum=0.03)


class SimpleStem(nn.Module):
    """Two 3x3 stride-2 convs: ``conv-BN-GELU`` to ``dim / 2``, ``conv-BN-SiLU`` to ``dim``."""

    def __init__(self, in_channels: int, dim: int, norm_cfg=YOLO_BN):
        super().__init__()
        hidden = dim // 2
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, 2, 1, bias=False),
            build_norm_layer(norm_cfg, hidden)[1], nn.GELU(),
            nn.Conv2d(hidden, dim, 3, 2, 1, bias=False),
            build_norm_layer(norm_cfg, dim)[1], nn.SiLU())

    def forward(self, x):
        return self.conv(x)


class VisionClueMerge(nn.Module):
    """Down-sampling by 2 that keeps every pixel: the four 2x2 phases stacked on channels
    (rows even / odd, then columns even / odd, the official order), then ``conv1x1-BN-SiLU``."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg=YOLO_BN):
        super().__init__()
        self.pw_linear = nn.Sequential(
            nn.Conv2d(4 * in_channels, out_channels, 1),
            build_norm_layer(norm_cfg, out_channels)[1], nn.SiLU())

    def forward(self, x):
        h, w = x.shape[2:]
        x = F.pad(x, (0, w % 2, 0, h % 2))
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
                       x[..., 1::2, 1::2]], dim=1)
        return self.pw_linear(x)


class LSBlock(nn.Module):
    """Local spatial block: ``x + fc3(GELU(fc2(BN(dwconv3x3(x)))))`` (the paper's LSBlock)."""

    def __init__(self, dim: int, norm_cfg=YOLO_BN):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = build_norm_layer(norm_cfg, dim)[1]
        self.fc2 = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.fc3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return x + self.fc3(self.act(self.fc2(self.norm(self.fc1(x)))))


class RGBlock(nn.Module):
    """Residual gated block (the paper's RG Block): ``fc1`` splits into ``x, v``;
    ``fc2(GELU(dwconv3x3(x) + x) * v)``, hidden width ``int(2 * hidden / 3)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = int(2 * hidden / 3)
        self.fc1 = nn.Conv2d(dim, hidden * 2, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        x, v = self.fc1(x).chunk(2, dim=1)
        return self.fc2(self.act(self.dwconv(x) + x) * v)


def mamba_yolo_ss2d(dim: int, d_state: int, ssm_ratio: float) -> SS2DMixer:
    """SS2D as Mamba-YOLO builds it: GELU, 3x3 depth-wise conv, ``A_log = 0``, random dt."""
    return SS2DMixer(dim, d_state=d_state, ssm_ratio=ssm_ratio, act='gelu', init='simple')


class ODSSBlock(nn.Module):
    """The ODSSBlock (official ``VSSBlock``): ``x = SiLU(BN(conv1x1(x)))``;
    ``x = x + SS2D(LN(LSBlock(x)))``; ``x = x + RGBlock(LN(x))``."""

    def __init__(self, in_channels: int, dim: int, mlp_ratio: float = 4.0, ssm_ratio: float = 2.0,
                 d_state: int = 16, drop_path: float = 0., norm_cfg=YOLO_BN):
        super().__init__()
        self.proj_conv = nn.Sequential(nn.Conv2d(in_channels, dim, 1),
                                       build_norm_layer(norm_cfg, dim)[1], nn.SiLU())
        self.lsblock = LSBlock(dim, norm_cfg)
        self.norm = ChannelLayerNorm(dim, eps=1e-6)
        self.op = mamba_yolo_ss2d(dim, d_state, ssm_ratio)
        self.norm2 = ChannelLayerNorm(dim, eps=1e-6)
        self.mlp = RGBlock(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.proj_conv(x)
        x = x + self.drop_path(self.op(self.norm(self.lsblock(x))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast (YOLOv5): ``cv1`` halves the channels, three chained
    ``k x k`` max-pools, the four maps concatenated, ``cv2`` to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 norm_cfg=YOLO_BN):
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = ConvNormAct(in_channels, hidden, 1, norm_cfg=norm_cfg)
        self.cv2 = ConvNormAct(hidden * 4, out_channels, 1, norm_cfg=norm_cfg)
        self.m = nn.MaxPool2d(kernel_size, 1, kernel_size // 2)

    def forward(self, x):
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(self.m(ys[-1]))
        return self.cv2(torch.cat(ys, dim=1))


class MambaYOLOStage(nn.Module):
    """``downsample`` (SimpleStem or Vision Clue Merge), ``blocks`` (ODSSBlocks), and ``sppf`` in
    the last stage."""

    def __init__(self, downsample: nn.Module, blocks, sppf=None):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        if sppf is not None:
            self.sppf = sppf


@MODELS.register_module()
class MambaYOLO(AttentionBackbone):
    """Mamba-YOLO's ODMamba backbone, presets T / B / L of the official YAMLs.

    Example (the YOLO detector takes P3-P5)::

        backbone=dict(type='MambaYOLO', arch='t', out_indices=(1, 2, 3))

    Args:
        arch: 't' | 'b' | 'l' or a dict with ``widths`` and ``depths`` (four stages each).
        mlp_ratio: RGBlock hidden width ratio (4; the hidden width is ``2/3`` of it).
        ssm_ratio: SS2D inner width ``ssm_ratio * dim`` (2).
        d_state: state size N of the selective scan (16).
        sppf_kernel: max-pool size of the SPPF (5).
        norm_cfg: BatchNorm of convs (Ultralytics' eps 1e-3, momentum 0.03).
        Others: see :class:`AttentionBackbone` (``out_indices`` default: all four stages,
            strides 4, 8, 16, 32).
    """
    arch_zoo = {
        't': dict(widths=[32, 64, 128, 256], depths=[1, 1, 3, 1]),
        'b': dict(widths=[64, 128, 256, 512], depths=[1, 1, 3, 1]),
        'l': dict(widths=[96, 192, 384, 576], depths=[2, 2, 6, 2]),
    }
    converter = 'mamba_yolo'

    def __init__(self, arch='t', in_channels=3, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False, mlp_ratio=4.0, ssm_ratio=2.0,
                 d_state=16, sppf_kernel=5, norm_cfg=YOLO_BN, init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        widths, depths = self.arch_settings['widths'], self.arch_settings['depths']
        if len(widths) != 4 or len(depths) != 4:
            raise ValueError(f'MambaYOLO: widths and depths need four stages each, got widths '
                             f'{widths} and depths {depths}')
        rates = self.drop_path_rates(depths)
        stages = []
        for i, (dim, depth) in enumerate(zip(widths, depths)):
            downsample = (SimpleStem(in_channels, dim, norm_cfg) if i == 0 else
                          VisionClueMerge(widths[i - 1], dim, norm_cfg))
            blocks = [ODSSBlock(dim, dim, mlp_ratio, ssm_ratio, d_state, rates[i][j], norm_cfg)
                      for j in range(depth)]
            sppf = SPPF(dim, dim, sppf_kernel, norm_cfg) if i == len(widths) - 1 else None
            stages.append(MambaYOLOStage(downsample, blocks, sppf))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(widths)
        self.stage_strides = [4 * 2**i for i in range(len(widths))]
        self._check_indices()

    def forward_stages(self, x):
        outs = []
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            if hasattr(stage, 'sppf'):
                x = stage.sppf(x)
            outs.append(x)
        return outs
