"""What every SR network of the toolkit shares: pretrained loading through a key converter,
the upsampling tails, and the ConvFFN / GDFN feed-forward layers."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule

from plugins.utils.checkpoint import PretrainedFromRelease


class SRNetwork(PretrainedFromRelease, BaseModule):
    """Base of the SR networks: ``upscale`` and ``init_cfg=dict(type='Pretrained', ...)``.

    A ``Pretrained`` init_cfg loads the official release as published (original key names)
    through the converter registered under ``converter`` in ``plugins.utils.converters``, and
    reports missing/unexpected keys. BasicSR releases hold ``params`` and often ``params_ema``;
    BasicSR's ``SRModel`` loads ``params`` unless its options set ``param_key_g``, so that is
    the copy taken unless ``init_cfg`` says ``copy='params_ema'``.
    """
    checkpoint_copies = ('params', 'params_ema', 'state_dict', 'model')
    def __init__(self, upscale: int, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if upscale not in (1, 2, 3, 4):
            raise ValueError(f'{type(self).__name__}: upscale must be 1, 2, 3 or 4, '
                             f'got {upscale}')
        self.upscale = upscale

    def init_weights(self) -> None:
        if not self.init_from_pretrained_cfg():
            super().init_weights()


def pixel_shuffle_tail(dim: int, out_channels: int, upscale: int) -> nn.Sequential:
    """``conv3x3 -> PixelShuffle`` in one step (SwinIR's 'pixelshuffledirect', the lightweight
    tail of DLGSANet)."""
    return nn.Sequential(nn.Conv2d(dim, out_channels * upscale ** 2, 3, 1, 1),
                         nn.PixelShuffle(upscale))
