"""The base class of every backbone of the toolkit (the backbone contract of DESIGN.md)."""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.checkpoint import PretrainedFromRelease


class AttentionBackbone(PretrainedFromRelease, BaseModule):
    """Presets, output bookkeeping, freezing, norm eval, checkpointing and pretrained loading.

    Subclasses define ``arch_zoo`` (preset name -> hyper-parameter dict), build ``self.stages``
    (an ``nn.ModuleList``; stage ``i`` includes its own patch embedding / downsampling), set
    ``self.stage_channels`` and ``self.stage_strides``, and implement ``forward_stages(x)`` that
    returns the list of all stage outputs (NCHW). ``size_divisor`` is the multiple the input is
    padded to before the stages run (1: none needed); outputs are cropped back to
    ``ceil(H / stride)`` so padding never shows.

    Args:
        arch: a preset name of ``arch_zoo`` or a dict of hyper-parameters.
        in_channels: channels of the input images.
        out_indices: stages whose outputs are returned.
        frozen_stages: stages ``0 .. frozen_stages - 1`` are frozen (-1: none).
        norm_eval: keep BatchNorm layers in eval mode during training.
        drop_path_rate: stochastic depth rate, increasing linearly over blocks.
        with_cp: activation checkpointing of every block (less memory, more compute).
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix=None)`` loads an official
            release or a toolkit checkpoint through ``convert_checkpoint``.
    """
    arch_zoo: Dict[str, dict] = {}
    size_divisor: int = 1
    converter: Optional[str] = None  # name in plugins.utils.converters.CONVERTERS

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.resolve_arch(arch)
        self.in_channels = in_channels
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.drop_path_rate = drop_path_rate
        self.with_cp = with_cp
        self.stage_channels: List[int] = []
        self.stage_strides: List[int] = []

    # ---- presets and bookkeeping -------------------------------------------------------------
    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'{cls.__name__} has no preset {arch!r}; presets: '
                               f'{sorted(cls.arch_zoo)} (or pass a dict of hyper-parameters)')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a preset name or a dict, got {type(arch).__name__}')
        base = dict(next(iter(cls.arch_zoo.values()))) if cls.arch_zoo else {}
        unknown = set(arch) - set(base) if base else set()
        if unknown:
            raise KeyError(f'unknown {cls.__name__} arch keys {sorted(unknown)}; '
                           f'expected a subset of {sorted(base)}')
        missing = set(base) - set(arch)
        if missing:
            raise KeyError(f'{cls.__name__} arch dict lacks {sorted(missing)}')
        return dict(arch)

    def _check_indices(self) -> None:
        num = len(self.stage_channels)
        bad = [i for i in self.out_indices if not -num <= i < num]
        if bad:
            raise ValueError(f'{type(self).__name__} has {num} stages (indices 0..{num - 1}); '
                             f'out_indices {list(self.out_indices)} has {bad}')
        self.out_indices = tuple(i % num for i in self.out_indices)
        if self.frozen_stages > num:
            raise ValueError(f'frozen_stages={self.frozen_stages} but the model has {num} stages')

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned map, in ``out_indices`` order."""
        return [self.stage_channels[i] for i in self.out_indices]

    @property
    def strides(self) -> List[int]:
        """Stride (input pixels per output pixel) of each returned map."""
        return [self.stage_strides[i] for i in self.out_indices]

    def is_returned(self, stage: int, num_stages: int) -> bool:
        """Whether ``out_indices`` returns stage ``stage`` (of ``num_stages``). Layers that act only
        on a returned map (output norms) are built for those alone, as the official dense-task
        backbones do (``norm{i} for i in out_indices``), so no parameter is left without a
        gradient (DDP would refuse it)."""
        return any(-num_stages <= i < num_stages and i % num_stages == stage
                   for i in self.out_indices)

    def drop_path_rates(self, depths: Sequence[int]) -> List[List[float]]:
        """Per-stage lists of stochastic depth rates, linear in the global block index."""
        total = sum(depths)
        rates = [self.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        out, start = [], 0
        for d in depths:
            out.append(rates[start:start + d])
            start += d
        return out

    # ---- running -----------------------------------------------------------------------------
    def run_block(self, block, *args):
        """Run a block, with activation checkpointing when ``with_cp`` is set and training."""
        if self.with_cp and self.training and any(a.requires_grad for a in args
                                                  if torch.is_tensor(a)):
            return cp.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f'{name} takes a batch of images (B, C, H, W); got shape '
                             f'{tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for {self.in_channels} input channels but got '
                             f'{x.shape[1]}: set the backbone\'s in_channels={x.shape[1]} or '
                             f'give it {self.in_channels}-channel images')
        coarsest = max(self.stage_strides[i] for i in self.out_indices)
        if min(x.shape[2:]) < coarsest:
            raise ValueError(f'{name} got a {x.shape[2]}x{x.shape[3]} input, smaller than its '
                             f'coarsest output stride {coarsest}: that map would have less than '
                             f'one input pixel per output pixel. Resize or pad the images to at '
                             f'least {coarsest}x{coarsest}.')

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        self._check_input(x)
        height, width = x.shape[2:]
        d = self.size_divisor
        if d > 1 and (height % d or width % d):
            x = F.pad(x, (0, -width % d, 0, -height % d))
        outs = self.forward_stages(x)
        return tuple(outs[i][..., :math.ceil(height / self.stage_strides[i]),
                             :math.ceil(width / self.stage_strides[i])].contiguous()
                     if d > 1 else outs[i] for i in self.out_indices)

    # ---- freezing, norm eval, weights ----------------------------------------------------------
    def _freeze_stages(self) -> None:
        for i in range(max(self.frozen_stages, 0)):
            stage = self.stages[i]
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        if self.init_from_pretrained_cfg():
            return
        super().init_weights()
        self._freeze_stages()
