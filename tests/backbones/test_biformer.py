"""BiFormer: presets, the backbone contract, and loading the official release's key layout."""
import re

import pytest
import torch

from plugins.backbones.biformer import BiFormer
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_norm_eval, check_official_layout_loads, check_output_shapes,
                       check_parameter_count, check_with_cp, run_demo_train_step)


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_parameter_count_matches_the_official_release(arch):
    check_parameter_count(BiFormer(arch), 'BiFormer', arch)


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250)])
def test_any_input_size_gives_ceil_of_stride(size):
    backbone = BiFormer('t')
    check_output_shapes(backbone, size, channels=[64, 128, 256, 512])
    assert backbone.strides == [4, 8, 16, 32]


def test_detection_size_with_the_detection_regions():
    check_output_shapes(BiFormer('t', n_win=16, out_indices=(0, 3)), (800, 1216))


def test_regions_per_side_is_not_a_size_constraint():
    for n_win in (5, 8, 16):
        check_output_shapes(BiFormer('t', n_win=n_win), (45, 71))


def test_gradients_reach_every_parameter():
    check_gradients_reach_every_parameter(BiFormer('t', drop_path_rate=0.1))


def test_frozen_stages_have_no_gradient_and_stay_in_eval():
    check_frozen_stages(BiFormer('t', frozen_stages=2), 2)


def test_norm_eval_keeps_batchnorm_statistics():
    check_norm_eval(BiFormer('t', norm_eval=True))


def test_with_cp_gives_the_same_output_and_gradients():
    check_with_cp(lambda **kw: BiFormer('t', **kw))


def official_state_dict(backbone, detection=True):
    """The same weights under the official key names (``BiFormer_mm`` when ``detection``, else
    the ImageNet model with its BatchNorm ``norm`` and ``head``)."""
    inverse = [
        (r'^stages\.(\d)\.downsample\.', lambda m: f'downsample_layers.{m.group(1)}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'extra_norms.{m.group(1)}.'),
        (r'\.mlp\.fc1\.', lambda m: '.mlp.0.'),
        (r'\.mlp\.fc2\.', lambda m: '.mlp.3.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        if detection or not key.startswith('extra_norms'):
            out[key] = value.clone()
    if not detection:
        dim = backbone.stage_channels[-1]
        out.update({'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
                    'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(BiFormer('t'))
    assert 'downsample_layers.0.3.weight' in official and 'extra_norms.3.bias' in official
    assert 'stages.2.7.attn.qkv.qkv.weight' in official and 'stages.3.1.attn.lepe.weight' in official
    assert 'stages.0.1.mlp.3.weight' in official and 'stages.1.0.pos_embed.weight' in official
    check_official_layout_loads(lambda **kw: BiFormer('t', **kw), official_state_dict, tmp_path)


def test_imagenet_checkpoint_reports_head_and_output_norms(tmp_path):
    official = official_state_dict(BiFormer('t'), detection=False)
    path = tmp_path / 'biformer_tiny_best.pth'
    torch.save(dict(model=official), path)
    report = load_pretrained(BiFormer('t'), str(path), convert=get_converter('biformer'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight', 'norm.bias',
                                           'norm.weight']
    assert sorted(report['missing']) == sorted(f'stages.{i}.norm.{p}' for i in range(4)
                                               for p in ('weight', 'bias'))


def test_converter_is_idempotent_on_toolkit_keys():
    state = BiFormer('t').state_dict()
    assert list(get_converter('biformer')(state)) == list(state)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(KeyError, match='no preset'):
        BiFormer('x')
    with pytest.raises(ValueError, match='topk'):
        BiFormer(dict(embed_dims=[64, 128, 256, 512], depths=[1, 1, 1, 1], topks=[1, 4, 0, -2],
                      mlp_ratio=3, head_dim=32))
    with pytest.raises(ValueError, match='smaller than its coarsest output stride 32'):
        BiFormer('t')(torch.randn(1, 3, 16, 64))


@pytest.mark.slow
@pytest.mark.parametrize('config,task', [
    ('configs/biformer/mask-rcnn_biformer-s_fpn_demo-coco.py', 'det'),
    ('configs/biformer/retinanet_biformer-s_fpn_demo-coco.py', 'det'),
    ('configs/biformer/upernet_biformer-s_demo-ade20k.py', 'seg'),
    ('configs/biformer/fpn_biformer-s_demo-ade20k.py', 'seg'),
])
def test_demo_config_trains_one_step(config, task, demo_data, tmp_path):
    run_demo_train_step(config, demo_data, tmp_path, task)
