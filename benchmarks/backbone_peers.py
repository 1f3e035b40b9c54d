"""Peers of the backbone benchmark: for each backbone preset, the model that it is compared with.

A peer is the same architecture built by someone else's code: timm's model where timm has one
(through :func:`benchmarks.peers.import_timm`), otherwise the official release's code, imported from
a folder of checkouts that the user gives (``--official-root`` or ``PLUGINS_OFFICIAL_ROOT``; never
committed). The official folder holds one checkout per repository, named after the repository
(``BiFormer``) or as ``owner+name`` (``rayleizhu+BiFormer``).

Adding a peer is one entry::

    @register_peer('HaloNet', label='timm {timm_name}',
                   presets={'halonet26t': 'halonet26t', 'halonet50ts': 'halonet50ts'})
    def _halonet(preset, timm_name, ctx):
        return timm_features(timm_name)

The builder gets the preset, the value that ``presets`` maps it to, and a :class:`PeerContext`
(the official root and a helper that imports a module of an official checkout); it returns a
callable ``f(images) -> anything`` in eval mode, or raises :class:`PeerUnavailable` with the reason
(which the benchmark prints as "n/a (reason)"). Peers run with their own random initialisation:
the benchmark compares cost, not outputs (parity with the same weights is checked in the tests and
the backbones' docstrings).
"""
import contextlib
import fnmatch
import functools
import importlib
import io
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .peers import import_natten, import_timm

OFFICIAL_ROOT_ENV = 'PLUGINS_OFFICIAL_ROOT'


class PeerUnavailable(RuntimeError):
    """The peer cannot be built here; the message says why (shown in the table)."""


@dataclass
class PeerEntry:
    architecture: str
    presets: Dict[str, str]
    label: str
    build: Callable

    def describe(self, preset: str) -> str:
        return self.label.format(name=self.presets.get(preset, preset),
                                 timm_name=self.presets.get(preset, preset))


@dataclass
class PeerContext:
    official_root: Optional[str] = None
    notes: list = field(default_factory=list)

    def checkout(self, repo: str) -> str:
        """The folder of the official checkout ``owner/name`` under the official root."""
        if not self.official_root:
            raise PeerUnavailable(f'official code of {repo} not given (--official-root or '
                                  f'{OFFICIAL_ROOT_ENV})')
        owner, name = repo.split('/')
        for cand in (name, f'{owner}+{name}', f'{owner}+{name}/repo'):
            path = os.path.join(self.official_root, cand)
            if os.path.isdir(path):
                return path
        raise PeerUnavailable(f'no checkout of {repo} in the official root (expected a folder '
                              f'{name} or {owner}+{name})')

    def import_official(self, repo: str, subdir: str, module: str,
                        modules: Optional[Dict[str, types.ModuleType]] = None):
        """Import ``module`` of the checkout of ``repo`` with ``subdir`` on ``sys.path``.
        ``modules`` are installed in ``sys.modules`` for the import only (stand-ins of packages
        that the file imports). Top-level packages that the checkout brings (``models``, ``ops``)
        are removed from ``sys.modules`` afterwards, so that two checkouts never mix."""
        path = os.path.join(self.checkout(repo), subdir)
        with _import_scope(path, modules or {}):
            try:
                return importlib.import_module(module)
            except ImportError as err:
                raise PeerUnavailable(f'official {repo} does not import here: {err}') from err


@contextlib.contextmanager
def _import_scope(path: str, modules: Dict[str, types.ModuleType]):
    before = set(sys.modules)
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
        for name in set(sys.modules) - before:  # the checkout's own modules
            file = getattr(sys.modules[name], '__file__', None) or ''
            if file.startswith(path):
                del sys.modules[name]


REGISTRY: Dict[str, PeerEntry] = {}


def register_peer(architecture: str, label: str, presets: Dict[str, str]):
    """Register the peer builder of the presets of ``architecture`` (its reference.yaml name);
    ``label`` may use ``{name}`` / ``{timm_name}`` (the preset's value in ``presets``)."""
    def wrap(fn):
        if architecture in REGISTRY:
            raise KeyError(f'a peer of {architecture} is registered already')
        REGISTRY[architecture] = PeerEntry(architecture, dict(presets), label, fn)
        return fn
    return wrap


def find_peer(architecture: str, preset: str) -> Optional[PeerEntry]:
    entry = REGISTRY.get(architecture)
    return entry if entry is not None and preset in entry.presets else None


def build_peer(architecture: str, preset: str, ctx: PeerContext):
    """``(label, callable)`` of the peer of a preset; raises :class:`PeerUnavailable`."""
    entry = find_peer(architecture, preset)
    if entry is None:
        raise PeerUnavailable(f'no peer registered for {architecture} {preset}')
    peer = entry.build(preset, entry.presets[preset], ctx)
    if isinstance(peer, nn.Module):
        peer.eval()
    return entry.describe(preset), peer


# ---------------------------------------------------------------------------------- helpers

def timm_features(name: str, **kwargs) -> nn.Module:
    """timm's ``name`` as a feature extractor (every stage's output), random weights."""
    timm = import_timm()
    if timm is None:
        raise PeerUnavailable('timm is not installed (see benchmarks/peers.py)')
    try:
        return timm.create_model(name, pretrained=False, features_only=True, **kwargs)
    except RuntimeError as err:  # an unknown model name in this timm version
        raise PeerUnavailable(f'timm {timm.__version__} cannot build {name}: {err}') from err


def _require(module: str, why: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise PeerUnavailable(f'{module} is not installed ({why})') from err


def _timm_or_unavailable():
    if import_timm() is None:
        raise PeerUnavailable('timm is not installed (the official code imports it)')


def _method(module: nn.Module, name: str) -> Callable:
    fn = getattr(module, name)

    class Bound(nn.Module):  # keeps eval() / parameters() of the module
        def __init__(self):
            super().__init__()
            self.model = module

        def forward(self, x):
            return fn(x)
    return Bound()


def _refuse_inputs(module: nn.Module, accepts: Callable[[int, int], bool], needs: str):
    """Make ``module`` raise a ValueError that says what it ``needs`` on inputs it cannot take
    (instead of a failed assertion or a shape error deep inside)."""
    def check(mod, args):
        h, w = args[0].shape[-2:]
        if not accepts(h, w):
            raise ValueError(f'{needs}, got {h}x{w}')
    module.register_forward_pre_hook(check)
    return module


def _only_224(module: nn.Module, what: str) -> nn.Module:
    return _refuse_inputs(module, lambda h, w: h == w == 224, f'{what} takes 224x224 only')


# ---------------------------------------------------------------------------------- timm peers

@register_peer('HaloNet', label='timm {timm_name}',
               presets={'halonet26t': 'halonet26t', 'halonet50ts': 'halonet50ts'})
def _halonet(preset, timm_name, ctx):
    # timm's halo blocks need every stage divisible by the block size (it asserts, no message)
    return _refuse_inputs(timm_features(timm_name), lambda h, w: h % 256 == w % 256 == 0,
                          'timm needs sides that are multiples of 256')


@register_peer('DaViT', label='timm {timm_name}',
               presets={'tiny': 'davit_tiny', 'small': 'davit_small', 'base': 'davit_base',
                        't': 'davit_tiny', 's': 'davit_small', 'b': 'davit_base'})
def _davit(preset, timm_name, ctx):
    return timm_features(timm_name)


@register_peer('MixerFormer', label='timm {timm_name}',
               presets={k: f'poolformer_{k}' for k in ('s12', 's24', 's36', 'm36', 'm48')})
def _mixerformer(preset, timm_name, ctx):
    # the presets are PoolFormer (the default mixer is its pooling): timm's PoolFormer v1
    return timm_features(timm_name)

class BuiltPerInputSize(nn.Module):
    """A peer whose model is built for one input size (timm's ConViT / TNT and the official
    PyramidTNT fix their position embeddings or attention biases at construction): one model per
    ``H x W``, built at its first call (the benchmark's warm-up), random weights. ``accepts``
    refuses the sizes that the code cannot be built for, with a message saying what it
    ``needs``."""

    def __init__(self, build: Callable, accepts: Callable[[int, int], bool], needs: str):
        super().__init__()
        self.build, self.accepts, self.needs = build, accepts, needs
        self.models = nn.ModuleDict()

    def forward(self, x):
        h, w = x.shape[-2:]
        if not self.accepts(h, w):
            raise ValueError(f'{self.needs}, got {h}x{w}')
        key = f'{h}x{w}'
        if key not in self.models:
            self.models[key] = self.build((h, w)).eval()
        return self.models[key](x)


_ISOTROPIC_STAGES = (2, 5, 8, 11)  # the blocks ending the four stages of ConViT / TNT


@register_peer('ConViT', label='timm {timm_name} (built per square input)',
               presets={'tiny': 'convit_tiny', 'small': 'convit_small', 'base': 'convit_base',
                        'ti': 'convit_tiny', 's': 'convit_small', 'b': 'convit_base'})
def _convit(preset, timm_name, ctx):
    timm_features('convit_tiny', out_indices=_ISOTROPIC_STAGES)  # raises where timm is absent
    # GPSA's int(sqrt(N)) grid: timm runs square inputs only
    return BuiltPerInputSize(
        lambda size: timm_features(timm_name, img_size=size, out_indices=_ISOTROPIC_STAGES),
        lambda h, w: h == w and h % 16 == 0, "timm's ConViT takes square multiples of 16 only")


@register_peer('TNT', label='timm {timm_name} (built per input size)',
               presets={'small': 'tnt_s_patch16_224', 'base': 'tnt_b_patch16_224',
                        's': 'tnt_s_patch16_224', 'b': 'tnt_b_patch16_224'})
def _tnt(preset, timm_name, ctx):
    timm_features('tnt_s_patch16_224', out_indices=_ISOTROPIC_STAGES)
    return BuiltPerInputSize(
        lambda size: timm_features(timm_name, img_size=size, out_indices=_ISOTROPIC_STAGES),
        lambda h, w: h % 16 == w % 16 == 0, "timm's TNT takes multiples of 16 only")


# ---------------------------------------------------------------------------------- official code

@register_peer('VAN', label='official van.py {name}',
               presets={'b0': 'van_b0', 'b1': 'van_b1', 'b2': 'van_b2', 'b3': 'van_b3'})
def _van(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('Visual-Attention-Network/VAN-Classification', '', 'models.van')
    return _method(getattr(mod, name)(pretrained=False), 'forward_features')


def _stand_in(module: str, **attrs) -> Dict[str, types.ModuleType]:
    """Empty modules standing in for ``module`` and its parent packages, with ``attrs`` set on
    it, where it is not installed (for an official file that imports what inference never uses);
    nothing where it is installed."""
    try:
        importlib.import_module(module)
        return {}
    except ImportError:
        pass
    parts = module.split('.')
    mods = {'.'.join(parts[:i]): types.ModuleType('.'.join(parts[:i]))
            for i in range(1, len(parts) + 1)}
    for name, value in attrs.items():
        setattr(mods[module], name, value)
    return mods


@register_peer('BiFormer', label='official biformer.py {name}',
               presets={'t': 'biformer_tiny', 's': 'biformer_small', 'b': 'biformer_base'})
def _biformer(preset, name, ctx):
    _timm_or_unavailable()
    _require('einops', 'the official BiFormer imports it; requirements/peers.txt pins it')
    # fairscale's checkpoint_wrapper serves training with checkpointing only: identity
    mod = ctx.import_official('rayleizhu/BiFormer', '', 'models.biformer', modules=_stand_in(
        'fairscale.nn.checkpoint', checkpoint_wrapper=lambda m, *a, **k: m))
    # auto_pad: the official switch that pads to region multiples (our backbone always does)
    return _method(getattr(mod, name)(pretrained=False, auto_pad=True), 'forward_features')


class LegacyNeighborhoodAttention2D(nn.Module):
    """The module API of natten < 0.20 (channels-last input, ``rel_pos_bias``, padding of maps
    smaller than ``kernel x dilation``) on the ``na2d`` kernel of the installed natten >= 0.20,
    which the official NAT code needs in order to import. natten >= 0.20 dropped the relative
    position bias: ``rpb`` is kept (parameter count) but not added, so the peer runs NATTEN's
    kernel without the bias add of the official models. With the same weights and zero biases,
    the official NAT-Mini / DiNAT-Mini on this module match our backbones' pooled last stage at
    224x224 to 6.6e-7 / 5.4e-7 (max abs diff)."""

    def __init__(self, dim, num_heads, kernel_size, dilation=None, qkv_bias=True, qk_scale=None,
                 attn_drop=0., proj_drop=0., rel_pos_bias=True, bias=None):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.kernel_size, self.dilation = kernel_size, dilation or 1
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # B H W C
        natten = import_natten()
        b, h, w, c = x.shape
        window = self.kernel_size * self.dilation
        x = F.pad(x, (0, 0, 0, max(0, window - w), 0, max(0, window - h)))
        hp, wp = x.shape[1:3]
        q, k, v = self.qkv(x).view(b, hp, wp, 3, self.num_heads, self.head_dim).unbind(3)
        out = natten.na2d(q, k, v, kernel_size=self.kernel_size, dilation=self.dilation,
                          scale=self.scale)  # B H W heads d
        return self.proj(out.reshape(b, hp, wp, c)[:, :h, :w])


def _natten_legacy_module() -> Dict[str, types.ModuleType]:
    if import_natten() is None:
        raise PeerUnavailable('natten is not installed (the official NAT code needs it; '
                              'requirements/peers.txt pins it)')
    shim = types.ModuleType('natten')
    shim.NeighborhoodAttention2D = LegacyNeighborhoodAttention2D
    shim.context = True  # the official code then asks for rel_pos_bias=True (natten >= 0.17)
    return {'natten': shim}


_NATTEN_NOTE = 'natten na2d (CPU flex, eager; no rpb add)'


def _nat_official(module: str, name: str, ctx: PeerContext):
    _timm_or_unavailable()
    mods = _natten_legacy_module()
    off = ctx.import_official('SHI-Labs/Neighborhood-Attention-Transformer', 'classification',
                              module, modules=mods)
    return _method(getattr(off, name)(pretrained=False), 'forward_features')


@register_peer('NAT', label='official nat.py {name} on ' + _NATTEN_NOTE,
               presets={'mini': 'nat_mini', 'tiny': 'nat_tiny', 'small': 'nat_small',
                        'base': 'nat_base'})
def _nat(preset, name, ctx):
    return _nat_official('nat', name, ctx)


@register_peer('DiNAT', label='official dinat.py {name} on ' + _NATTEN_NOTE,
               presets={'mini': 'dinat_mini', 'tiny': 'dinat_tiny', 'small': 'dinat_small',
                        'base': 'dinat_base'})
def _dinat(preset, name, ctx):
    return _nat_official('dinat', name, ctx)


@register_peer('FaViT', label='official favit.py {name}',
               presets={'b0': 'favit_b0', 'b1': 'favit_b1', 'b2': 'favit_b2', 'b3': 'favit_b3'})
def _favit(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('q2479036243/FaViT', 'FaViT/classification', 'favit')
    return _method(getattr(mod, name)(), 'forward_features')


@register_peer('L2ViT', label='official l2vit.py {name}',
               presets={'tiny': 'L2ViT_Tiny', 'small': 'L2ViT_Small', 'base': 'L2ViT_Base'})
def _l2vit(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('ChuanyangZheng/L2ViT', 'classification/models', 'l2vit')
    return _method(getattr(mod, name)(), 'forward_features')


@register_peer('InLinePVT', label='official inline_pvt.py {name}',
               presets={p: f'inline_pvt_{p}' for p in ('tiny', 'small', 'medium', 'large')})
def _inline_pvt(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('LeapLabTHU/InLine', 'models', 'inline_pvt')
    # the official config's defaults (config.py): InLine attention everywhere, no K/V reduction
    model = getattr(mod, name)(attn_type='IIII', la_sr_ratios='1111')
    return _method(model, 'forward_features')


# the official cfgs/inline_swin_{t,s,b}.yaml (window 56: global attention at 224 in stage 1)
_INLINE_SWIN = {
    'tiny': dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], attn_type='IIIS'),
    'small': dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], attn_type='IISS'),
    'base': dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                 attn_type='IIMS2'),
}


@register_peer('InLineSwin', label='official inline_swin.py InLineSwin-{name}',
               presets={p: p for p in _INLINE_SWIN})
def _inline_swin(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('LeapLabTHU/InLine', 'models', 'inline_swin')
    model = mod.InLineSwin(img_size=224, window_size=56, **_INLINE_SWIN[name])
    # its blocks hold the input resolution they were built for (masks, merging)
    return _only_224(_method(model, 'forward_features'), 'the official InLine-Swin')


@register_peer('STViT', label='official stvit.py {name}',
               presets={'small': 'stvit_small', 'base': 'stvit_base', 'large': 'stvit_large'})
def _stvit(preset, name, ctx):
    _timm_or_unavailable()
    _require('scipy.io', 'the official STViT imports it')
    # fvcore's FLOP counter is imported at module level, used by its test only
    mod = ctx.import_official('hhb072/STViT', 'models', 'stvit', modules=_stand_in(
        'fvcore.nn', FlopCountAnalysis=None, flop_count_table=None))
    args = types.SimpleNamespace(drop=0., drop_path=0.)
    return _method(getattr(mod, name)(args), 'forward_features')


@register_peer('SGFormer', label='official sgformer.py {name}',
               presets={'s': 'sgformer_s', 'm': 'sgformer_m', 'b': 'sgformer_b'})
def _sgformer(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('OliverRensu/SG-Former', '', 'sgformer')
    with _numpy_float_alias():  # its position embedding asks numpy for np.float (numpy < 1.24)
        model = getattr(mod, name)()
    # a 56x56 position embedding and token counts fixed for 224 in its attention
    return _only_224(_method(model, 'forward_features'), 'the official SG-Former')


@contextlib.contextmanager
def _hidden_modules(package: str):
    """``package`` and its submodules out of ``sys.modules`` while a checkout that vendors its own
    copy of it (HyenaND's timm 0.4.12) imports; the installed copy is put back afterwards."""
    def own(name):
        return name == package or name.startswith(package + '.')
    saved = {name: mod for name, mod in sys.modules.items() if own(name)}
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [name for name in sys.modules if own(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


class _TokenMap(nn.Module):
    """The official DeiT-style model's patch tokens after its last block and final norm (what our
    isotropic backbone returns), without the classifier's token pick."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        m = self.model
        return m.norm(m.blocks(m.patch_embed(x) + m.pos_embed))


# DeiT-T / S / B shells (the HyenaND models.py deit_*_patch16_224) and the --method of each preset
_HYENA_SHELLS = {'tiny': (192, 3), 'small': (384, 6), 'base': (768, 12)}


@register_peer('HyenaViT', label='official HyenaND vision_transformer.py {name}',
               presets={p: f'deit_{p.split("-")[0]} --method '
                        f'{"hyena2dattn" if p.endswith("hybrid") else "hyena2d"}'
                        for p in ('tiny', 'tiny-hybrid', 'small', 'small-hybrid', 'base',
                                  'base-hybrid')})
def _hyena_vit(preset, name, ctx):
    _timm_or_unavailable()  # the schemas its torchvision import needs
    _require('einops', 'the official HyenaND imports it; requirements/peers.txt pins it')
    with _hidden_modules('timm'):
        mod = ctx.import_official('Itamarzimm/HyenaND', 'pytorch-image-models',
                                  'timm.models.vision_transformer')
    dim, heads = _HYENA_SHELLS[preset.split('-')[0]]
    # the README's options (Hyena-DeiT / hybrid); the model reads them from the argparse object
    args = types.SimpleNamespace(
        method=name.split()[-1], use_cls_token=False, hyena_filter_order=64, hyena_order=2,
        hyena2d_filter=True, hyena2d_sqrt_decay=False, directional_mode='seq',
        direct_paramtrization=False, window_mode='standard', patch_size=16, grad_cp=False)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every layer it builds
        model = mod.VisionTransformer(
            img_size=224, embed_dim=dim, depth=12, num_heads=heads, mlp_ratio=4, qkv_bias=True,
            norm_layer=functools.partial(nn.LayerNorm, eps=1e-6), args=args)
    # its patch embedding asserts the build size, its operator a square map of that size
    return _only_224(_TokenMap(model), 'the official Hyena-DeiT')


_RAFTMLP_DIMS = {'s': [64, 128, 256, 512], 'm': [96, 192, 384, 768], 'l': [128, 192, 512, 1024]}


class _Levels(nn.Module):
    """The official RaftMLP's four level outputs (what its detection backbone computes)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        outs = []
        for level in self.model.levels:
            x = level(x)
            outs.append(x)
        return outs


@register_peer('RaftMLP', label='official raft-mlp libs/models.py RaftMLP-{name}',
               presets={'s': 'S', 'm': 'M', 'l': 'L'})
def _raftmlp(preset, name, ctx):
    import_timm()  # puts the peers folder on the path: einops (timm itself is not needed)
    _require('einops', 'the official RaftMLP imports it; requirements/peers.txt pins it')
    mod = ctx.import_official('okojoalg/raft-mlp', '', 'libs.models')
    kernels = [[4, 8], [2, 4], [2, 4], [2]]
    layers = [dict(depth=d, dim=c, patch_size=min(k), raft_size=2, embedding_kernels=k)
              for d, c, k in zip([2, 2, 6, 2], _RAFTMLP_DIMS[preset], kernels)]
    # configs/settings/imagenet-raft-mlp-cross-mlp-emb-{s,m,l}.yaml
    return _Levels(mod.RaftMLP(layers, token_mixing_type='ser_pm',
                               embedding_type='emb_cross_mlp', shortcut=False))


@contextlib.contextmanager
def _numpy_float_alias():
    import numpy as np
    had = 'float' in np.__dict__
    if not had:
        np.float = float
    try:
        yield
    finally:
        if not had:
            del np.float


def matching(pattern: str, names):
    """Names matching any of the comma-separated globs of ``pattern`` (case-insensitive)."""
    globs = [g.strip().lower() for g in pattern.split(',') if g.strip()]
    return [n for n in names if any(fnmatch.fnmatch(n.lower(), g) for g in globs)]


# the official ptnt_ti_patch16_192 / ptnt_s / m / b_patch16_256 (pyramid_tnt.py)
_PYRAMID_TNT = {
    'tiny': (80, 5, 2, 1, [2, 6, 3, 2]), 'small': (128, 8, 4, 2, [2, 8, 4, 2]),
    'medium': (192, 12, 4, 2, [2, 8, 6, 2]), 'base': (256, 16, 4, 2, [2, 10, 6, 2]),
}


@register_peer('PyramidTNT',
               label='official pyramid_tnt.py PyramidTNT-{name} (built per input size)',
               presets={p: p for p in _PYRAMID_TNT})
def _pyramid_tnt(preset, name, ctx):
    _timm_or_unavailable()
    mod = ctx.import_official('huawei-noah/Efficient-AI-Backbones', 'tnt_pytorch', 'pyramid_tnt')
    outer, inner, outer_heads, inner_heads, depths = _PYRAMID_TNT[name]
    scale = [1, 2, 4, 4]
    configs = dict(depths=depths, outer_dims=[outer * s for s in scale],
                   inner_dims=[inner * s for s in scale],
                   outer_heads=[outer_heads * s for s in scale],
                   inner_heads=[inner_heads * s for s in scale])
    # its query-key biases are sized at construction for grids that halve exactly three times
    return BuiltPerInputSize(
        lambda size: _method(mod.PyramidTNT(configs=configs, img_size=size, qkv_bias=False),
                             'forward_features'),
        lambda h, w: h % 64 == w % 64 == 0,
        'the official PyramidTNT takes multiples of 64 only')
