"""Plug-in blocks in every ResNet a config may name: mmdet's, mmseg's, and PluginResNet at 18/34."""
import pytest
import torch
from mmengine.registry import DefaultScope

from plugins.backbones.plugin_resnet import PluginResNet

BLOCKS = [dict(type='ECABlock'), dict(type='ELABlock', variant='T'),
          dict(type='ULSAMBlock', num_subspaces=4), dict(type='PSABlock', mode='sequential'),
          dict(type='LargeKernelAttention')]


def plugin(cfg, position):
    return [dict(cfg=cfg, stages=(False, True, True, True), position=position)]


@pytest.mark.parametrize('depth', [18, 34])
@pytest.mark.parametrize('position', ['after_conv1', 'after_conv2', 'after_conv3'])
def test_basic_block_resnets_take_plugins(depth, position):
    model = PluginResNet(depth, plugins=plugin(dict(type='ECABlock'), position))
    model.train()
    outs = model(torch.randn(2, 3, 97, 131))
    assert [o.shape[1] for o in outs] == model.out_channels == [64, 128, 256, 512]
    blocks = [m for m in model.modules() if type(m).__name__ == 'ECABlock']
    assert len(blocks) == sum(model.stage_blocks[1:])
    sum(o.mean() for o in outs).backward()
    assert all(b.conv.weight.grad is not None for b in blocks)


def test_basic_block_plugins_see_the_right_channels():
    model = PluginResNet(18, plugins=plugin(dict(type='ELABlock', variant='B'), 'after_conv1'))
    channels = sorted({m.in_channels for m in model.modules() if type(m).__name__ == 'ELABlock'})
    assert channels == [128, 256, 512]


def test_two_plugins_at_one_position_chain():
    cfgs = [dict(cfg=dict(type='ECABlock', identity_init=True), position='after_conv2'),
            dict(cfg=dict(type='ELABlock', identity_init=True), position='after_conv2')]
    model = PluginResNet(18, plugins=cfgs)
    model.eval()
    reference = PluginResNet(18)
    reference.eval()
    reference.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(model(x), reference(x)):  # identity at init: the plain ResNet's output
        torch.testing.assert_close(a, b)


def test_pretrained_resnet_weights_load_unchanged():
    plain = PluginResNet(18)
    with_blocks = PluginResNet(18, plugins=plugin(dict(type='PSABlock'), 'after_conv2'))
    result = with_blocks.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all('psa' in k for k in result.missing_keys)


@pytest.mark.parametrize('cfg', BLOCKS, ids=lambda c: c['type'])
@pytest.mark.parametrize('library', ['mmdet', 'mmseg'])
def test_library_resnet50_takes_each_block(cfg, library):
    from importlib import import_module
    import_module(f'{library}.utils').register_all_modules(init_default_scope=False)
    registry = import_module(f'{library}.registry').MODELS
    with DefaultScope.overwrite_default_scope(library):
        model = registry.build(dict(type='ResNet' if library == 'mmdet' else 'ResNetV1c',
                                    depth=50, plugins=plugin(cfg, 'after_conv2')))
    outs = model(torch.randn(1, 3, 65, 79))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]


def test_mmpose_config_builds_with_plugins():
    from mmpose.utils import register_all_modules
    from mmpose.registry import MODELS
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(dict(
            type='TopdownPoseEstimator',
            backbone=dict(type='PluginResNet', depth=18,
                          plugins=plugin(dict(type='ECABlock'), 'after_conv2'),
                          out_indices=(3, )),
            head=dict(type='HeatmapHead', in_channels=512, out_channels=17,
                      loss=dict(type='KeypointMSELoss', use_target_weight=True),
                      decoder=dict(type='MSRAHeatmap', input_size=(48, 64),
                                   heatmap_size=(12, 16), sigma=2))))
    heatmaps = model(torch.randn(1, 3, 64, 48), None, mode='tensor')
    assert heatmaps.shape == (1, 17, 16, 16)  # 2 x 2 stride-32 map, three 2x deconvs
