"""MEDUSA: "MEDUSA: Multi-scale Encoder-Decoder Self-Attention Deep Neural Network Architecture for
Medical Image Analysis" (Aboutalebi, Pavlova, Gunraj, Shafiee, Sabri, Alaref, Wong; Frontiers in
Medicine 2022, arXiv 2110.06063).

"Single body, multi-scale heads": instead of many small attention modules, each seeing one stage,
one high-capacity encoder-decoder self-attention *body* looks at the image, and one *head* per
scale turns the body's output into that scale's attention, which modulates the backbone's
features *inside* the network (the modulated map is what the next stage sees):

    F   = sigmoid(UNet(image))                       the body: one map for the whole image
    A_l = Conv7x7_l(resize(F, H_l x W_l))            head l: a C_l-channel attention map
    X_l <- X_l + X_l * A_l                           stage l's output, fed onwards

Facts from the release (the MEDUSA model of COVID-Net CXR-3, lindawangg/COVID-Net, files
``model/build_model.py`` and ``model/resnet*.py``; the paper's text was not at hand): the body is
a 4-level U-Net (3x3 conv + ReLU; encoder 32, 32 | 64, 64 | 64, 64 | 128, 128, bottleneck 256;
each decoder level up-samples x2, two convs, concatenates the skip, one conv: 256, 256, 128, 64;
a 3x3 conv and a sigmoid give one channel) on a separate, smaller copy of the image (256x256); a
head bilinearly resizes the body's map to the stage's grid and applies a 7x7 conv with bias to
the stage's channels, no activation; the stage's features become ``x + x * A``. What this file
chooses where the release leaves it open or is tied to its classifier is in ``docs/medusa.md``.

``MEDUSA`` wraps any backbone given by config (the toolkit's, mmdet's, mmseg's, mmpose's): the
heads act through forward hooks on the module that ends each stage, so the wrapped backbone, its
arguments, pretrained weights, frozen stages and norm eval are untouched; ``out_channels`` and
``strides`` are the wrapped backbone's, so necks check as before.
"""
import functools
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.func import functional_call

from ..ops.utils import crop_to, pad_to_multiple
from ..registry import MODELS

PROBE_SIZE = 256  # side of the shape-only (meta) input that finds each stage's channels / stride


def conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class DecoderLevel(nn.Module):
    """Up-sample x2 (nearest), two 3x3 convs, concatenate the skip (first), one 3x3 conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.Sequential(conv_relu(in_channels, out_channels),
                                conv_relu(out_channels, out_channels))
        self.fuse = conv_relu(skip_channels + out_channels, out_channels)

    def forward(self, x, skip):
        x = self.up(F.interpolate(x, scale_factor=2.0, mode='nearest'))
        return self.fuse(torch.cat([skip, x], dim=1))


class EncoderDecoderBody(nn.Module):
    """The self-attention body: a U-Net whose sigmoid output is the attention source ``F``.

    Args:
        in_channels: image channels.
        encoder_channels: widths of the encoder levels (two convs each, max-pool 2 between) and,
            last, of the bottleneck (one conv).
        decoder_channels: widths of the decoder levels, deepest first.
        out_channels: channels of ``F``.

    Any input size: the image is zero-padded to a multiple of ``2 ** levels`` and ``F`` cropped
    back.
    """

    def __init__(self, in_channels: int, encoder_channels: Sequence[int],
                 decoder_channels: Sequence[int], out_channels: int = 1):
        super().__init__()
        enc, dec = list(encoder_channels), list(decoder_channels)
        if len(enc) < 2 or len(dec) != len(enc) - 1:
            raise ValueError(f'MEDUSA body: encoder_channels lists the encoder levels then the '
                             f'bottleneck, decoder_channels one width per encoder level; got '
                             f'{len(enc)} and {len(dec)} values ({enc}, {dec})')
        self.encoder = nn.ModuleList()
        width = in_channels
        for c in enc[:-1]:
            self.encoder.append(nn.Sequential(conv_relu(width, c), conv_relu(c, c)))
            width = c
        self.bottleneck = conv_relu(width, enc[-1])
        width = enc[-1]
        self.decoder = nn.ModuleList()
        for skip, c in zip(reversed(enc[:-1]), dec):
            self.decoder.append(DecoderLevel(width, skip, c))
            width = c
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)
        for m in self.modules():  # Keras' default of the release's convs: Glorot, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x, _ = pad_to_multiple(x, 2 ** len(self.encoder))
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = level(x, skip)
        return crop_to(torch.sigmoid(self.out(x)), size)


class AttentionHead(nn.Module):
    """Head ``l``: ``A_l = Conv_kxk(resize(F, H_l x W_l))`` (bilinear, half-pixel centres)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 7,
                 identity_init: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        if identity_init:  # A = 0: the stage's features pass unchanged
            nn.init.zeros_(self.conv.weight)
        else:  # the release's He-normal
            nn.init.kaiming_normal_(self.conv.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(self.conv.bias)

    def forward(self, source: torch.Tensor, size) -> torch.Tensor:
        return self.conv(F.interpolate(source, size=tuple(size), mode='bilinear',
                                       align_corners=False))


@MODELS.register_module()
class MEDUSA(BaseModule):
    """Any backbone plus MEDUSA's single attention body and one attention head per stage.

    Example (mmdet's ResNet-50, pretrained, not perturbed at the start)::

        backbone=dict(type='MEDUSA', identity_init=True,
                      backbone=dict(type='ResNet', depth=50, ...,
                                    init_cfg=dict(type='Pretrained',
                                                  checkpoint='torchvision://resnet50')))

    Args:
        backbone: config of the wrapped backbone (built in the config's scope, so ``'ResNet'``
            is mmdet's, mmseg's or mmpose's).
        levels: indices of the stages that get a head (default: every stage).
        stage_modules: dotted names of the modules whose outputs are the stages' maps (NCHW),
            for a backbone MEDUSA does not know; default: ``res_layers`` of OpenMMLab ResNets,
            the last block of each of ``stages[i].blocks`` for the toolkit's backbones.
        body_stride: the body sees the image average-pooled by this factor.
        encoder_channels, decoder_channels: the body's U-Net widths (default: the release's).
        body_out_channels: channels of the body's output ``F`` (the release: 1).
        head_kernel: kernel size of the heads' conv (the release: 7).
        identity_init: zero-initialise the heads (``A = 0``): the output is exactly the wrapped
            backbone's at the start, so a pretrained backbone is not perturbed.
        init_cfg: for the wrapper as a whole (the wrapped backbone takes its own).
    """

    def __init__(self, backbone: dict, levels: Optional[Sequence[int]] = None,
                 stage_modules: Optional[Sequence[str]] = None, body_stride: int = 4,
                 encoder_channels: Sequence[int] = (32, 64, 64, 128, 256),
                 decoder_channels: Sequence[int] = (256, 256, 128, 64),
                 body_out_channels: int = 1, head_kernel: int = 7, identity_init: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError(f'MEDUSA wraps a backbone given by its config dict (with a type), '
                            f'got {backbone!r}')
        if body_stride < 1:
            raise ValueError(f'MEDUSA: body_stride must be a positive integer, got {body_stride}')
        self.in_channels = backbone.get('in_channels', 3)
        self.backbone = MODELS.build(backbone)
        self.stage_names = list(stage_modules or self._default_stage_modules(self.backbone))
        stage_channels, self._out_shapes = self._probe()
        num = len(stage_channels)
        levels = range(num) if levels is None else levels
        bad = [i for i in levels if not 0 <= i < num]
        if bad:
            raise ValueError(f'MEDUSA: levels {list(levels)} has {bad}; the backbone has {num} '
                             f'stages ({self.stage_names})')
        self.levels = sorted(set(levels))
        self.body_stride = body_stride
        self.body = EncoderDecoderBody(self.in_channels, encoder_channels, decoder_channels,
                                       body_out_channels)
        self.heads = nn.ModuleDict({
            str(i): AttentionHead(body_out_channels, stage_channels[i], head_kernel,
                                  identity_init) for i in self.levels})
        modules = dict(self.backbone.named_modules())
        for i in self.levels:
            # a bound method (through partial): a deep copy of the model re-binds it to the copy
            modules[self.stage_names[i]].register_forward_hook(
                functools.partial(self._modulate, str(i)))
        # the body's output of the latest forward pass; kept (not cleared) because activation
        # checkpointing (``with_cp``) re-runs a hooked block during the backward pass
        self._body_output: Optional[torch.Tensor] = None

    @staticmethod
    def _default_stage_modules(backbone: nn.Module) -> List[str]:
        if getattr(backbone, 'res_layers', None):  # mmdet / mmseg / mmpose ResNets and kin
            return list(backbone.res_layers)
        stages = getattr(backbone, 'stages', None)
        if isinstance(stages, nn.ModuleList) and all(
                isinstance(getattr(s, 'blocks', None), nn.ModuleList) and len(s.blocks)
                for s in stages):
            return [f'stages.{i}.blocks.{len(s.blocks) - 1}' for i, s in enumerate(stages)]
        raise ValueError(f'MEDUSA does not know where the stages of {type(backbone).__name__} '
                         f'end: pass stage_modules=[...] with the dotted names of the modules '
                         f'whose outputs are the stages\' (B, C, H, W) maps')

    def _probe(self):
        """Channels of each stage's map and shapes of the backbone's outputs, from a forward pass
        on meta tensors (no memory, no compute; works when the model is built on any device)."""
        modules = dict(self.backbone.named_modules())
        missing = [n for n in self.stage_names if n not in modules]
        if missing:
            raise ValueError(f'MEDUSA: {type(self.backbone).__name__} has no module(s) {missing}')
        seen: Dict[int, object] = {}
        hooks = [modules[name].register_forward_hook(
            lambda mod, args, out, i=i: seen.__setitem__(i, out))
            for i, name in enumerate(self.stage_names)]
        state = {name: torch.empty_like(t, device='meta') for name, t in
                 list(self.backbone.named_parameters()) + list(self.backbone.named_buffers())}
        try:
            with torch.no_grad():
                outs = functional_call(self.backbone, state, (torch.empty(
                    1, self.in_channels, PROBE_SIZE, PROBE_SIZE, device='meta'),))
        finally:
            for hook in hooks:
                hook.remove()
        for i, name in enumerate(self.stage_names):
            out = seen.get(i)
            if not (torch.is_tensor(out) and out.dim() == 4):
                raise ValueError(f'MEDUSA: the output of {name} is not a (B, C, H, W) map '
                                 f'({type(out).__name__}{tuple(getattr(out, "shape", ()))}); '
                                 f'pass stage_modules=[...] naming modules that output one')
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [seen[i].shape[1] for i in range(len(self.stage_names))], \
            [tuple(o.shape[1:]) for o in outs]

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned map (the wrapped backbone's)."""
        return [c for c, _, _ in self._out_shapes]

    @property
    def strides(self) -> List[int]:
        """Stride of each returned map (the wrapped backbone's)."""
        return [round(PROBE_SIZE / w) for _, _, w in self._out_shapes]

    def _modulate(self, level: str, module, args, x):
        """The forward hook of stage ``level``: ``X_l + X_l * A_l``."""
        return x + x * self.heads[level](self._body_output, x.shape[-2:])

    def forward(self, x: torch.Tensor):
        s = self.body_stride
        image = F.avg_pool2d(x, s, ceil_mode=True) if s > 1 else x
        self._body_output = self.body(image)
        return self.backbone(x)
