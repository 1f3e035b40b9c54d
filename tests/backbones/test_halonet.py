"""HaloNet: presets, the backbone contract, timm's key layout, and parity with timm."""
import re

import pytest
import torch

from benchmarks.peers import import_timm
from plugins.backbones.halonet import HaloNet
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import (check_frozen_stages, check_gradients_reach_every_parameter,
                       check_norm_eval, check_official_layout_loads, check_output_shapes,
                       check_parameter_count, check_with_cp, run_demo_train_step)

timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


@pytest.mark.parametrize('arch', ['halonet26t', 'halonet50ts'])
def test_parameter_count_matches_timm(arch):
    with torch.device('meta'):
        backbone = HaloNet(arch)
    check_parameter_count(backbone, 'HaloNet', arch)


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 250)])
def test_any_input_size_gives_ceil_of_stride(size):
    backbone = HaloNet('halonet26t')
    check_output_shapes(backbone, size, channels=[256, 512, 1024, 2048])
    assert backbone.strides == [4, 8, 16, 32]


def test_detection_size():
    check_output_shapes(HaloNet('halonet26t', out_indices=(0, 3)), (800, 1216))


def test_gradients_reach_every_parameter():
    check_gradients_reach_every_parameter(HaloNet('halonet26t', drop_path_rate=0.1))


def test_frozen_stages_have_no_gradient_and_stay_in_eval():
    check_frozen_stages(HaloNet('halonet26t', frozen_stages=2), 2)


def test_norm_eval_keeps_batchnorm_statistics():
    check_norm_eval(HaloNet('halonet26t', norm_eval=True))


def test_with_cp_gives_the_same_output_and_gradients():
    check_with_cp(lambda **kw: HaloNet('halonet26t', **kw))


def test_residual_branches_start_at_zero():
    """timm's zero_init_last: from scratch, each block starts as its shortcut."""
    backbone = HaloNet('halonet26t')
    backbone.init_weights()
    last = [m.conv3_1x1.bn.weight for s in backbone.stages for m in s.blocks]
    assert last and all(torch.count_nonzero(w) == 0 for w in last)


def timm_state_dict(backbone, head=True):
    """The same weights under timm's keys (``stem.*``, ``stages.i.j.*``, ``head.fc``)."""
    inverse = [(r'^stages\.0\.stem\.', lambda m: 'stem.'),
               (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.{m.group(2)}.')]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if head:
        out.update({'head.fc.weight': torch.randn(1000, 2048), 'head.fc.bias': torch.zeros(1000)})
    return out


def test_timm_key_layout_loads_through_the_converter(tmp_path):
    official = timm_state_dict(HaloNet('halonet26t'))
    assert 'stem.conv3.bn.running_var' in official
    assert 'stages.3.0.self_attn.pos_embed.height_rel' in official
    assert 'stages.2.1.post_attn.weight' in official and 'stages.1.0.shortcut.conv.weight' in official
    check_official_layout_loads(lambda **kw: HaloNet('halonet26t', **kw),
                                lambda m: timm_state_dict(m, head=False), tmp_path)


def test_imagenet_checkpoint_reports_only_the_classifier(tmp_path):
    path = tmp_path / 'halonet26t_a1h_256.pth'
    torch.save(timm_state_dict(HaloNet('halonet26t')), path)
    report = load_pretrained(HaloNet('halonet26t'), str(path), convert=get_converter('halonet'))
    assert sorted(report['unexpected']) == ['head.fc.bias', 'head.fc.weight']
    assert report['missing'] == []


def test_converter_is_idempotent_on_toolkit_keys():
    state = HaloNet('halonet26t').state_dict()
    assert list(get_converter('halonet')(state)) == list(state)


def _randomize_batchnorm(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -.5, .5), (m.running_var, .5, 2.),
                              (m.weight.data, .5, 1.5), (m.bias.data, -.2, .2)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


@needs_timm
@pytest.mark.parametrize('arch', ['halonet26t', 'halonet50ts'])
def test_equals_timm_with_the_same_weights(arch):
    """timm's model (its size constraint: 256x256) and ours with timm's weights: every stage
    output within 1e-4 (measured: bit-identical)."""
    torch.manual_seed(0)
    ref = timm.create_model(arch).eval()
    _randomize_batchnorm(ref)
    ours = HaloNet(arch).eval()
    report = ours.load_state_dict(get_converter('halonet')(ref.state_dict()), strict=False)
    assert report.missing_keys == [] and report.unexpected_keys == ['head.fc.weight',
                                                                    'head.fc.bias']
    assert sum(p.numel() for p in ref.parameters()) == \
        sum(p.numel() for p in ours.parameters()) + 2048 * 1000 + 1000
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = ref.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        outs = ours(x)
    for out, exp in zip(outs, expected):
        assert out.shape == exp.shape
        assert (out - exp).abs().max() <= 1e-4


def test_bad_arguments_are_clear_errors():
    base = HaloNet.arch_zoo['halonet26t']
    with pytest.raises(KeyError, match='no preset'):
        HaloNet('halonet101')
    with pytest.raises(ValueError, match='"b" \\(bottleneck\\) and "a"'):
        HaloNet(dict(base, layouts=['bb', 'bx', 'ba', 'aa']))
    with pytest.raises(ValueError, match='one layout'):
        HaloNet(dict(base, layouts=['bb', 'bb', 'ba']))
    with pytest.raises(ValueError, match='smaller than its coarsest output stride 32'):
        HaloNet('halonet26t')(torch.randn(1, 3, 16, 64))


@pytest.mark.slow
@pytest.mark.parametrize('config,task', [
    ('configs/halonet/mask-rcnn_halonet50ts_fpn_demo-coco.py', 'det'),
    ('configs/halonet/retinanet_halonet50ts_fpn_demo-coco.py', 'det'),
    ('configs/halonet/upernet_halonet50ts_demo-ade20k.py', 'seg'),
])
def test_demo_config_trains_one_step(config, task, demo_data, tmp_path):
    run_demo_train_step(config, demo_data, tmp_path, task)
