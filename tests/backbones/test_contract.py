"""The backbone contract of DESIGN.md, checked for every architecture of ``reference.yaml``.

Each architecture listed there (a registered backbone class of the same name) gets the same
checks: every preset's parameter count against its source, any input size giving
``ceil(H / stride)`` maps, 800x1216, gradients reaching every parameter, frozen stages, norm eval,
activation checkpointing, the converter leaving toolkit keys alone, and clear errors for bad input.
The architecture files in this folder keep only what is particular to each architecture (official
key layouts, parity with timm or the official code, its own mechanisms). A new backbone joins by
adding its entry to ``reference.yaml`` (and a line to ``SMALL`` below where the default small
model does not fit it).
"""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from plugins.backbones.reference import (count_params_like_the_source, load_reference,
                                         reference_numbers)
from plugins.registry import MODELS
from plugins.utils.converters import get_converter

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_norm_eval, check_output_shapes, check_with_cp)

ARCHITECTURES = sorted(load_reference())
PRESETS = [(name, preset) for name in ARCHITECTURES
           for preset in load_reference()[name]['presets']]

#: where the default small model (below) does not fit an architecture: a function of the class
#: giving the arch dict its behavioural checks build (same widths, heads and mechanisms)
SMALL = {
    'STViT': lambda cls: dict(embed_dims=[16, 32, 40, 48], depths=[1, 1, 1, 1],
                              num_heads=[1, 2, 5, 8], stoken_sizes=[8, 4, 1, 1],
                              layer_scale=[None, None, 1e-6, 1e-6]),
    'InLineSwin': lambda cls: dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 2, 2],
                                   num_heads=[1, 2, 2, 4], inline_blocks=[1, 1, 1, 0]),
    # isotropic: one block per stage, GPSA in the first three, the class token in the last;
    # TNT at half TNT-S's width (its global attention dominates at 800x1216)
    'ConViT': lambda cls: dict(cls.arch_zoo['tiny'], depth=4, local_layers=3),
    'TNT': lambda cls: dict(cls.arch_zoo['small'], depth=4, outer_dims=192, outer_heads=3),
}


def small_arch(name, cls):
    """The first preset with at most two blocks per stage (two keep every alternation of
    block kinds: shifted / plain windows, local / global): the contract is about sizes,
    padding, gradients and bookkeeping, which the depth does not change."""
    if name in SMALL:
        return SMALL[name](cls)
    arch = dict(cls.arch_zoo[next(iter(cls.arch_zoo))])
    if 'depths' in arch:
        arch['depths'] = [min(d, 2) for d in arch['depths']]
    return arch


def backbone_class(name):
    cls = MODELS.get(name)
    assert cls is not None, f'reference.yaml lists {name!r}, which is not a registered backbone'
    return cls


def build(name, **kwargs):
    cls = backbone_class(name)
    return cls(small_arch(name, cls), **kwargs)


@pytest.mark.parametrize('name,preset', PRESETS)
def test_preset_parameter_count_matches_its_source(name, preset):
    try:
        with torch.device('meta'):
            backbone = backbone_class(name)(preset)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel at build time
        backbone = backbone_class(name)(preset)
    count = count_params_like_the_source(backbone, name, preset)
    ref = reference_numbers(name, preset)
    if 'params_m' not in ref:
        pytest.skip(f'{name} {preset}: its source gives no parameter count')
    assert abs(count - ref['params_m']) / ref['params_m'] < 0.01, (count, ref['params_m'])


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250), (32, 32)])
@pytest.mark.parametrize('name', ARCHITECTURES)
def test_any_input_size_gives_maps_of_ceil_size_over_stride(name, size):
    backbone = build(name)
    fitting = [i for i, s in enumerate(backbone.stage_strides) if s <= min(size)]
    if len(fitting) < len(backbone.stage_strides):  # a stride-64 stage: returning it is refused
        backbone = build(name, out_indices=fitting)  # (test_bad_input_is_a_clear_error)
    check_output_shapes(backbone, size, batch=2)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_detection_size(name):
    backbone = build(name)
    last = len(backbone.stage_channels) - 1
    check_output_shapes(build(name, out_indices=(0, last)), (800, 1216))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_out_indices_select_stages_channels_and_strides(name):
    full = build(name)
    backbone = build(name, out_indices=(1, -1))
    last = len(full.stage_channels) - 1
    assert backbone.out_indices == (1, last)
    assert backbone.out_channels == [full.stage_channels[1], full.stage_channels[last]]
    assert backbone.strides == [full.stage_strides[1], full.stage_strides[last]]
    check_output_shapes(backbone, (64, 96))


@pytest.mark.parametrize('skip_first', [False, True])
@pytest.mark.parametrize('name', ARCHITECTURES)
def test_gradients_reach_every_parameter(name, skip_first):
    """Also when the first map is not returned (RetinaNet's setting): a parameter without a
    gradient makes DDP fail."""
    backbone = build(name, drop_path_rate=0.1)
    if skip_first:
        backbone = build(name, drop_path_rate=0.1,
                         out_indices=range(1, len(backbone.stage_channels)))
    scale = max(1, max(backbone.strides) // 32)  # odd sizes above a stride-64 stage too
    check_gradients_reach_every_parameter(backbone, size=(64 * scale + 1, 46 * scale + 1))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_frozen_stages_have_no_gradient_and_stay_in_eval(name):
    check_frozen_stages(build(name, frozen_stages=2), 2)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_norm_eval_keeps_batchnorm_statistics_or_changes_nothing(name):
    backbone = build(name, norm_eval=True)
    if any(isinstance(m, _BatchNorm) for m in backbone.modules()):
        check_norm_eval(backbone)
        return
    torch.manual_seed(0)
    plain = build(name)
    backbone.load_state_dict(plain.state_dict())
    x = torch.randn(1, plain.in_channels, 64, 64)
    for a, b in zip(plain.train()(x), backbone.train()(x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_with_cp_gives_the_same_output_and_gradients(name):
    check_with_cp(lambda **kw: build(name, **kw))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_converter_leaves_toolkit_keys_alone(name):
    cls = backbone_class(name)
    if cls.converter is None:
        pytest.skip(f'{name} has no official release to convert')
    state = build(name).state_dict()
    assert list(get_converter(cls.converter)(state)) == list(state)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_bad_input_is_a_clear_error(name):
    backbone = build(name)
    channels, coarsest = backbone.in_channels, max(backbone.strides)
    with pytest.raises(ValueError, match=f'{channels} input channels but got 1'):
        backbone(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=f'smaller than its coarsest output stride {coarsest}'):
        backbone(torch.randn(1, channels, coarsest - 1, 64))
    with pytest.raises(ValueError, match='takes a batch of images'):
        backbone(torch.randn(channels, 64, 64))
    with pytest.raises(ValueError, match='out_indices'):
        build(name, out_indices=(len(backbone.stage_channels), ))


def test_every_registered_attention_backbone_has_reference_numbers():
    from plugins.backbones.base import AttentionBackbone
    registered = {name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, AttentionBackbone)
                  and cls.__module__.startswith('plugins.')}
    assert registered - set(ARCHITECTURES) == set()

