"""FaViT: presets, the backbone contract, and loading the official release's key layout."""
import re

import pytest
import torch

from plugins.backbones.favit import FaViT
from plugins.backbones.reference import count_params_like_the_source, reference_numbers
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_official_layout_loads, check_output_shapes, check_parameter_count,
                       check_with_cp, run_demo_train_step)


def _meta(arch):
    with torch.device('meta'):
        return FaViT(arch)


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3'])
def test_parameter_count_equals_the_official_code(arch):
    """The official favit_b0..b3 built with the 1000-class head (counted beside it once)."""
    count = count_params_like_the_source(_meta(arch), 'FaViT', arch)
    assert abs(count - reference_numbers('FaViT', arch)['official_params_m']) < 1e-3


@pytest.mark.parametrize('arch', ['b0', 'b1'])
def test_parameter_count_matches_the_paper_table(arch):
    check_parameter_count(_meta(arch), 'FaViT', arch)


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250), (32, 32)])
def test_any_input_size_gives_ceil_of_stride(size):
    backbone = FaViT('b0')
    check_output_shapes(backbone, size, channels=[32, 64, 128, 256])
    assert backbone.strides == [4, 8, 16, 32]


def test_detection_size():
    check_output_shapes(FaViT('b0', out_indices=(0, 3)), (800, 1216))


def test_gradients_reach_every_parameter():
    check_gradients_reach_every_parameter(FaViT('b0', drop_path_rate=0.1))


def test_frozen_stages_have_no_gradient_and_stay_in_eval():
    check_frozen_stages(FaViT('b0', frozen_stages=2), 2)


def test_with_cp_gives_the_same_output_and_gradients():
    check_with_cp(lambda **kw: FaViT('b0', **kw))


def official_state_dict(backbone, head=False):
    """The same weights under the official keys (``patch_embed{i}``, ``block{i}.{j}``,
    ``norm{i}``, ``mlp.dwconv.dwconv``; ``head`` for the ImageNet model)."""
    inverse = [
        (r'^stages\.(\d)\.patch_embed\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.'),
        (r'\.mlp\.dwconv\.', lambda m: '.mlp.dwconv.dwconv.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if head:
        dim = backbone.stage_channels[-1]
        out.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(FaViT('b0'))
    assert 'patch_embed1.proj.weight' in official and 'norm4.bias' in official
    assert 'block3.5.attn.single_heads.1.weight' in official
    assert 'block1.0.mlp.dwconv.dwconv.weight' in official and 'block4.1.attn.kv_g.bias' in official
    check_official_layout_loads(lambda **kw: FaViT('b0', **kw), official_state_dict, tmp_path)


def test_imagenet_checkpoint_reports_only_the_classifier(tmp_path):
    path = tmp_path / 'favit_b0.pth'
    torch.save(dict(model=official_state_dict(FaViT('b0'), head=True)), path)
    report = load_pretrained(FaViT('b0'), str(path), convert=get_converter('favit'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']
    assert report['missing'] == []


def test_converter_is_idempotent_on_toolkit_keys():
    state = FaViT('b0').state_dict()
    assert list(get_converter('favit')(state)) == list(state)


def test_bad_arguments_are_clear_errors():
    base = FaViT.arch_zoo['b0']
    with pytest.raises(KeyError, match='no preset'):
        FaViT('b4')
    with pytest.raises(ValueError, match='one value per stage'):
        FaViT(dict(base, depths=[2, 2, 6]))
    with pytest.raises(ValueError, match='sum\\(mul\\)'):
        FaViT(dict(base, embed_dims=[40, 64, 128, 256]))
    with pytest.raises(ValueError, match='smaller than its coarsest output stride 32'):
        FaViT('b0')(torch.randn(1, 3, 16, 64))


@pytest.mark.slow
@pytest.mark.parametrize('config,task', [
    ('configs/favit/mask-rcnn_favit-b2_fpn_demo-coco.py', 'det'),
    ('configs/favit/retinanet_favit-b2_fpn_demo-coco.py', 'det'),
    ('configs/favit/upernet_favit-b2_demo-ade20k.py', 'seg'),
    ('configs/favit/fpn_favit-b2_demo-ade20k.py', 'seg'),
])
def test_demo_config_trains_one_step(config, task, demo_data, tmp_path):
    run_demo_train_step(config, demo_data, tmp_path, task)
