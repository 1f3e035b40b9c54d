"""Official checkpoints load through the key converters (tools/convert_checkpoint.py too).

``data/official_state_dict_shapes.json`` lists the key names and shapes of the official
state dicts (EquationWalker/CATANet, NeonLeexiang/DLGSANet), read off their architectures.
"""
import json
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.registry import MODELS

from plugins.utils.converters import CONVERTERS

SHAPES = json.load(open(osp.join(osp.dirname(__file__), 'data',
                                 'official_state_dict_shapes.json')))
CASES = {
    'catanet_x2': ('catanet', dict(type='CATANet', upscale=2)),
    'catanet_x4': ('catanet', dict(type='CATANet', upscale=4)),
    'dlgsanet-tiny_x2': ('dlgsanet', dict(type='DLGSANet', arch='tiny', upscale=2)),
}


def official_state_from(model, case):
    """An official-layout state dict holding ``model``'s weights (through the converter's map)."""
    convert = CONVERTERS[CASES[case][0]]
    official_keys = list(SHAPES[case])
    mapping = dict(zip(official_keys, convert(OrderedDict((k, None) for k in official_keys))))
    own = model.state_dict()
    return OrderedDict((k, own[mapping[k]].clone()) for k in official_keys)


@pytest.mark.parametrize('case', sorted(CASES))
def test_every_official_key_maps_to_a_toolkit_key_of_the_same_shape(case):
    arch, cfg = CASES[case]
    model = MODELS.build(cfg)
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    converted = CONVERTERS[arch](OrderedDict((k, torch.zeros(s)) for k, s in SHAPES[case].items()))
    assert sorted(converted) == sorted(own)
    assert all(list(v.shape) == own[k] for k, v in converted.items())


@pytest.mark.parametrize('case', sorted(CASES))
def test_converting_toolkit_keys_again_changes_nothing(case):
    arch, cfg = CASES[case]
    state = MODELS.build(cfg).state_dict()
    assert list(CONVERTERS[arch](state)) == list(state)


@pytest.mark.parametrize('case', sorted(CASES))
def test_official_checkpoint_round_trip_through_init_cfg(case, tmp_path):
    _, cfg = CASES[case]
    source = MODELS.build(cfg)
    if 'CATANet' == cfg['type']:
        source.train()(torch.rand(1, 3, 16, 16))  # give the token centres trained values
    path = str(tmp_path / 'official.pth')
    torch.save({'params': official_state_from(source, case)}, path)  # BasicSR's wrapper
    loaded = MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path)))
    loaded.init_weights()
    x = torch.rand(1, 3, 20, 18)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), source.eval()(x), rtol=0, atol=1e-6)
