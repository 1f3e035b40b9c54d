"""MixerFormer: any registered token mixer in the MetaFormer pyramid of "MetaFormer Is Actually
What You Need for Vision" (Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan; arXiv 2111.11418).

MetaFormer (Sec. 3.1, Eq. 1-3) abstracts a transformer block into
``Y = X + TokenMixer(Norm(X))``, ``Z = Y + MLP(Norm(Y))``; PoolFormer (Sec. 3.2, Fig. 2, Table 1)
is the four-stage pyramid with pooling as the mixer: a 7x7 stride-4 conv stem, 3x3 stride-2 convs
between stages, GroupNorm with one group, 1x1-conv MLPs, layer scale. MixerFormer is that pyramid
with the mixer taken from the registry, per stage, by config: any module ``Mixer(dim, num_heads,
**params)`` mapping ``(B, C, H, W)`` to ``(B, C, H, W)``. With ``PoolingMixer`` (the default) the
presets are PoolFormer-S12 / S24 / S36 / M36 / M48, parameter for parameter, and load PoolFormer's
ImageNet release as it is.

Any H, W: the input is zero-padded to a multiple of 4 (then the stem gives ``H / 4`` and each
down-sampling ``ceil``, i.e. stage ``i`` has ``ceil(H / 2^(i+2))`` rows); each mixer pads to its
own windows / regions inside, as the mixer contract requires.
"""
from typing import Dict, List, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from torch.nn.init import trunc_normal_

from ..registry import MODELS
from ..utils.auxiliary_loss import AUXILIARY_LOSSES, pending_auxiliary_losses
from .base import AttentionBackbone

#: Per-stage heads of the presets: ``embed_dim // HEAD_DIM`` (a mixer dict may set ``num_heads``).
HEAD_DIM = 32


def registered_mixers() -> Dict[str, type]:
    """Every token mixer of the toolkit: the ``MODELS`` entries whose class lives in
    ``plugins.mixers`` (so mixers added later are found without a list to update)."""
    return {name: cls for name, cls in sorted(MODELS.module_dict.items())
            if cls.__module__.startswith('plugins.mixers.')}


class ConvPatchEmbed(nn.Module):
    """A strided convolution (PoolFormer's ``PatchEmbed`` without norm; key ``proj``)."""

    def __init__(self, in_channels: int, dim: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size, stride, padding)

    def forward(self, x):
        return self.proj(x)


class ConvMlp(nn.Module):
    """``fc2(drop(act(fc1(x))))`` with 1x1 convolutions on an NCHW map (PoolFormer's ``Mlp``)."""

    def __init__(self, dim: int, hidden: int, act_cfg: dict, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        for conv in (self.fc1, self.fc2):  # the official init, at construction
            trunc_normal_(conv.weight, std=.02)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MixerFormerBlock(nn.Module):
    """``x + γ1 · mixer(norm1(x))``, then ``x + γ2 · MLP(norm2(x))`` (MetaFormer Eq. 2-3 with
    layer scale; γ are per-channel vectors, absent when ``layer_scale_init`` is None)."""

    def __init__(self, dim: int, token_mixer: nn.Module, mlp_ratio: float, norm_cfg: dict,
                 act_cfg: dict, drop_path: float = 0., layer_scale_init=1e-5, drop: float = 0.):
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.token_mixer = token_mixer
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_cfg, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if layer_scale_init is None:
            self.layer_scale_1 = self.layer_scale_2 = None
        else:
            self.layer_scale_1 = nn.Parameter(layer_scale_init * torch.ones(dim))
            self.layer_scale_2 = nn.Parameter(layer_scale_init * torch.ones(dim))

    def mix(self, x):
        y = self.token_mixer(x)
        if y.shape != x.shape:
            raise ValueError(f'token mixer {type(self.token_mixer).__name__} returned shape '
                             f'{tuple(y.shape)} for an input {tuple(x.shape)}; a mixer must keep '
                             f'(B, C, H, W)')
        return y

    @staticmethod
    def scale(gamma, x):
        return x if gamma is None else gamma.view(-1, 1, 1) * x

    def forward(self, x):
        x = x + self.drop_path(self.scale(self.layer_scale_1, self.mix(self.norm1(x))))
        return x + self.drop_path(self.scale(self.layer_scale_2, self.mlp(self.norm2(x))))


class MixerFormerStage(nn.Module):
    """``patch_embed`` (stem or down-sampling), ``blocks``, ``norm`` (output norm or Identity)."""

    def __init__(self, patch_embed: nn.Module, blocks: List[nn.Module], norm: nn.Module):
        super().__init__()
        self.patch_embed = patch_embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm


def _preset(depths, embed_dims, layer_scale_init):
    return dict(depths=depths, embed_dims=embed_dims, mlp_ratios=[4] * len(depths),
                num_heads=[d // HEAD_DIM for d in embed_dims], layer_scale_init=layer_scale_init)


@MODELS.register_module()
class MixerFormer(AttentionBackbone):
    """A MetaFormer pyramid whose token mixer is any registered mixer, chosen per stage.

    Examples: neighborhood attention in every stage; pooling in stages 1-2, shifted windows
    (shifts alternating over the blocks) in stage 3, global attention in stage 4; the hook that
    adds the auxiliary losses of mixers that have one (docs/mixerformer.md)::

        backbone=dict(type='MixerFormer', arch='s12',
                      mixers=dict(type='NeighborhoodAttention2d', kernel_size=7))
        backbone=dict(type='MixerFormer', arch='s12', mixers=[
            dict(type='PoolingMixer'), dict(type='PoolingMixer'),
            [dict(type='ShiftedWindowAttention', window_size=7),
             dict(type='ShiftedWindowAttention', window_size=7, shift_size=3)],
            dict(type='GlobalSelfAttention')])
        custom_hooks = [dict(type='AuxiliaryLossHook')]

    Args:
        arch: 's12' | 's24' | 's36' | 'm36' | 'm48' (PoolFormer's) or a dict with ``depths``,
            ``embed_dims`` and optionally ``mlp_ratios`` (4), ``num_heads`` (``dim // 32``, at
            least 1) and ``layer_scale_init`` (1e-5; None: no layer scale).
        mixers: one mixer config for every stage, or a list with one entry per stage; an entry is
            a config or a list of configs used in turn over the stage's blocks (block ``j`` gets
            ``entry[j % len(entry)]``, e.g. Swin's alternating shifts). A config is
            ``dict(type=<registered name>, **params)``; ``dim`` is the stage width and
            ``num_heads`` the stage's heads unless the config sets it.
        norm_cfg: norm in blocks and on the outputs (PoolFormer: GroupNorm with one group); it
            runs on NCHW maps.
        act_cfg: the MLP's activation (GELU).
        drop_rate: dropout in the MLP.
        Others: see :class:`AttentionBackbone`. Outputs have a norm on each returned stage (the
        official dense-prediction backbone's ``norm0/2/4/6``).
    """
    arch_zoo = {
        's12': _preset([2, 2, 6, 2], [64, 128, 320, 512], 1e-5),
        's24': _preset([4, 4, 12, 4], [64, 128, 320, 512], 1e-5),
        's36': _preset([6, 6, 18, 6], [64, 128, 320, 512], 1e-6),
        'm36': _preset([6, 6, 18, 6], [96, 192, 384, 768], 1e-6),
        'm48': _preset([8, 8, 24, 8], [96, 192, 384, 768], 1e-6),
    }
    size_divisor = 4
    converter = 'mixerformer'

    def __init__(self,
                 arch: Union[str, dict] = 's12',
                 mixers: Union[dict, Sequence] = dict(type='PoolingMixer'),
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 drop_rate: float = 0.,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        settings = self.arch_settings
        dims, depths = settings['embed_dims'], settings['depths']
        self.stage_channels = list(dims)
        self.stage_strides = [4 * 2**i for i in range(len(dims))]
        self._check_indices()
        stage_mixers = self.mixer_configs(mixers, depths)
        rates = self.drop_path_rates(depths)
        stages = []
        for i, dim in enumerate(dims):
            embed = (ConvPatchEmbed(in_channels, dim, 7, 4, 2) if i == 0 else
                     ConvPatchEmbed(dims[i - 1], dim, 3, 2, 1))
            heads, ratio = settings['num_heads'][i], settings['mlp_ratios'][i]
            blocks = [MixerFormerBlock(dim, self.build_mixer(cfg, dim, heads, i, j), ratio,
                                       norm_cfg, act_cfg, rates[i][j],
                                       settings['layer_scale_init'], drop_rate)
                      for j, cfg in enumerate(stage_mixers[i])]
            norm = (build_norm_layer(norm_cfg, dim)[1] if self.is_returned(i, len(dims))
                    else nn.Identity())
            stages.append(MixerFormerStage(embed, blocks, norm))
        self.stages = nn.ModuleList(stages)
        self._warned_uncollected = False

    # ---- configuration -------------------------------------------------------------------------
    @classmethod
    def resolve_arch(cls, arch):
        if isinstance(arch, dict):
            arch = dict(arch)
            dims = arch.get('embed_dims')
            if dims is None or 'depths' not in arch:
                raise KeyError(f'a MixerFormer arch dict needs depths and embed_dims, got '
                               f'{sorted(arch)}')
            arch.setdefault('mlp_ratios', [4] * len(dims))
            arch.setdefault('num_heads', [max(1, d // HEAD_DIM) for d in dims])
            arch.setdefault('layer_scale_init', 1e-5)
        arch = super().resolve_arch(arch)
        lengths = {k: len(arch[k]) for k in ('depths', 'embed_dims', 'mlp_ratios', 'num_heads')}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'MixerFormer arch: one value per stage expected, got lengths '
                             f'{lengths}')
        return arch

    @staticmethod
    def mixer_configs(mixers, depths: Sequence[int]) -> List[List[dict]]:
        """The mixer config of every block: ``[stage][block]``."""
        num_stages = len(depths)
        if isinstance(mixers, dict):
            mixers = [mixers] * num_stages
        if not isinstance(mixers, (list, tuple)) or len(mixers) != num_stages:
            raise ValueError(f'MixerFormer: mixers must be one mixer config (a dict) for all '
                             f'stages or a list of {num_stages} entries, one per stage; got '
                             f'{mixers!r:.200}')
        per_block = []
        for i, (entry, depth) in enumerate(zip(mixers, depths)):
            cycle = [entry] if isinstance(entry, dict) else list(entry)
            if not cycle or not all(isinstance(c, dict) and 'type' in c for c in cycle):
                raise ValueError(f'MixerFormer: the mixer entry of stage {i} must be a config '
                                 f'dict with a type (a registered token mixer) or a list of '
                                 f'them; got {entry!r:.200}')
            per_block.append([cycle[j % len(cycle)] for j in range(depth)])
        return per_block

    @staticmethod
    def build_mixer(cfg: dict, dim: int, num_heads: int, stage: int, block: int) -> nn.Module:
        """``Mixer(dim, num_heads, **params)`` from the registry, with errors that say where."""
        if 'dim' in cfg:
            raise ValueError(f'MixerFormer stage {stage}: a mixer config must not set dim (it is '
                             f'the stage width, {dim}); got {cfg!r}')
        if isinstance(cfg['type'], str) and MODELS.get(cfg['type']) is None:
            from ..utils.config_checks import suggest_types
            raise KeyError(f"MixerFormer stage {stage}: no registered module {cfg['type']!r}; "
                           f"nearest: {suggest_types(cfg['type'])}; mixers of the toolkit: "
                           f"{sorted(registered_mixers())}")
        full = dict(cfg, dim=dim, num_heads=cfg.get('num_heads', num_heads))
        try:
            return MODELS.build(full)
        except (TypeError, ValueError, KeyError) as err:
            raise type(err)(f'MixerFormer stage {stage} block {block}: building mixer {full} '
                            f'failed: {err}') from err

    # ---- running -------------------------------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        if self.training and not self._warned_uncollected:
            self._warn_if_auxiliary_losses_are_not_collected()
        outs = []
        for stage in self.stages:
            x = stage.patch_embed(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            outs.append(stage.norm(x))
        return outs

    def _warn_if_auxiliary_losses_are_not_collected(self) -> None:
        """Auxiliary losses still set when the next training forward starts were never added to
        a loss: the model's ``loss`` is not wrapped (no ``AuxiliaryLossHook``)."""
        pending = pending_auxiliary_losses(self)
        if pending:
            self._warned_uncollected = True
            print_log(f'MixerFormer: the {AUXILIARY_LOSSES} {sorted(pending)} of the previous '
                      f'training forward were never added to a training loss, so they do not '
                      f'train. Add custom_hooks = [dict(type=\'AuxiliaryLossHook\')] to the config '
                      f'(or call plugins.utils.auxiliary_loss.attach_auxiliary_losses(model)); '
                      f'see docs/mixerformer.md.', logger='current', level=30)
