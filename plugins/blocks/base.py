"""Base class of the CNN plug-in blocks (the mmcv plugin contract of DESIGN.md)."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule


class PluginBlock(BaseModule):
    """A shape-preserving attention block for ResNet ``plugins=`` and any CNN.

    Subclasses implement ``attend(x)``: the paper's output for input ``x``. With
    ``identity_init=True`` the block returns ``x + scale * (attend(x) - x)`` with a per-channel
    ``scale`` initialised to zero, so inserting it into a pretrained CNN leaves the network's
    function unchanged at the start of fine-tuning; with ``scale = 1`` it is the paper's block.
    """

    def __init__(self, in_channels: int, identity_init: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{type(self).__name__}: in_channels must be a positive int, got '
                             f'{in_channels!r}')
        self.in_channels = in_channels
        self.identity_init = identity_init
        if identity_init:
            self.identity_scale = nn.Parameter(torch.zeros(1, in_channels, 1, 1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} was built for {self.in_channels} channels '
                             f'(B, C, H, W) but got shape {tuple(x.shape)}')
        out = self.attend(x)
        if self.identity_init:
            out = x + self.identity_scale * (out - x)
        return out
