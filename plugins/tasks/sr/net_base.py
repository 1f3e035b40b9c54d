"""What every SR network of the toolkit shares: pretrained loading through a key converter,
the upsampling tails, and the ConvFFN / GDFN feed-forward layers."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule

from plugins.utils.checkpoint import load_pretrained


class SRNetwork(BaseModule):
    """Base of the SR networks: ``upscale`` and ``init_cfg=dict(type='Pretrained', ...)``.

    A ``Pretrained`` init_cfg loads the official release as published (``params`` /
    ``params_ema`` wrappers, original key names) through the converter registered under
    ``converter`` in ``plugins.utils.converters``, and reports missing/unexpected keys.
    """
    converter: Optional[str] = None

    def __init__(self, upscale: int, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if upscale not in (1, 2, 3, 4):
            raise ValueError(f'{type(self).__name__}: upscale must be 1, 2, 3 or 4, '
                             f'got {upscale}')
        self.upscale = upscale

    def convert_checkpoint(self, state_dict: dict) -> dict:
        if self.converter is None:
            return state_dict
        from plugins.utils.converters import get_converter
        return get_converter(self.converter)(state_dict)

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_pretrained(self, cfg['checkpoint'], convert=self.convert_checkpoint,
                            prefix=cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()


def pixel_shuffle_tail(dim: int, out_channels: int, upscale: int) -> nn.Sequential:
    """``conv3x3 -> PixelShuffle`` in one step (SwinIR's 'pixelshuffledirect', the lightweight
    tail of DLGSANet)."""
    return nn.Sequential(nn.Conv2d(dim, out_channels * upscale ** 2, 3, 1, 1),
                         nn.PixelShuffle(upscale))
