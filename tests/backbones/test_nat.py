"""NAT and DiNAT: presets and the backbone contract (any size, dilation clamped on small maps)."""
import pytest

from plugins.backbones.nat import NAT, DiNAT
from plugins.utils.converters import get_converter

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_output_shapes, check_parameter_count,
                       check_with_cp)


@pytest.mark.parametrize('cls', [NAT, DiNAT])
@pytest.mark.parametrize('arch', ['mini', 'tiny', 'small', 'base'])
def test_parameter_count_matches_the_official_release(cls, arch):
    check_parameter_count(cls(arch), cls.__name__, arch)


@pytest.mark.parametrize('cls', [NAT, DiNAT])
@pytest.mark.parametrize('size', [(97, 131), (33, 250)])
def test_any_input_size_gives_ceil_of_stride(cls, size):
    check_output_shapes(cls('mini'), size, channels=[64, 128, 256, 512])


@pytest.mark.parametrize('cls', [NAT, DiNAT])
def test_gradients_frozen_stages_checkpointing(cls):
    """(NAT has only LayerNorms: norm_eval has no BatchNorm to act on.)"""
    check_gradients_reach_every_parameter(cls('mini', drop_path_rate=0.1))
    check_frozen_stages(cls('mini', frozen_stages=2), 2)
    check_with_cp(lambda **kw: cls('mini', **kw))


def test_converter_is_idempotent_on_toolkit_keys():
    state = NAT('mini').state_dict()
    assert list(get_converter('nat')(state)) == list(state)
