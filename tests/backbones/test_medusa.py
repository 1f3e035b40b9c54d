"""MEDUSA around the toolkit's and the task libraries' backbones: shapes, identity start,
gradients into the single body from every level, hooks that survive copies and checkpointing."""
import copy
import functools

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

from plugins.utils.config_checks import ConfigError, check_channels
from .contract import check_with_cp

BACKBONES = {  # name: (scope, wrapped backbone config)
    'mmdet-resnet50': ('mmdet', dict(type='ResNet', depth=50)),
    'mmseg-resnet50v1c': ('mmseg', dict(type='ResNetV1c', depth=50, strides=(1, 2, 1, 1),
                                        dilations=(1, 1, 2, 4))),
    'mmpose-resnet50': ('mmpose', dict(type='ResNet', depth=50, out_indices=(1, 2, 3))),
    'van-b0': ('mmdet', dict(type='VAN', arch='b0')),
    'nat-mini': ('mmdet', dict(type='NAT', arch='mini')),
}


def build(name, **medusa):
    """A fresh copy of the model (built once per configuration: a ResNet-50 takes a second)."""
    return copy.deepcopy(_build(name, **medusa))


@functools.lru_cache(maxsize=None)
def _build(name, **medusa):
    scope, backbone = BACKBONES[name]
    with DefaultScope.overwrite_default_scope(scope):
        if medusa.get('backbone') == 'bare':
            return MODELS.build(backbone)
        return MODELS.build(dict(type='MEDUSA', backbone=backbone, **medusa))


def bare_twin(model, name):
    """The wrapped backbone alone, with the same weights."""
    bare = build(name, backbone='bare')
    bare.load_state_dict(model.backbone.state_dict())
    bare.train(model.training)  # (OpenMMLab ResNets' train() returns None: no chaining)
    return bare


@pytest.mark.parametrize('name', list(BACKBONES))
def test_outputs_have_the_wrapped_backbones_shapes_at_odd_sizes(name):
    model = build(name).eval()
    bare = bare_twin(model, name)
    for size in [(67, 93), (33, 50)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            outs, ref = model(x), bare(x)
        assert [o.shape for o in outs] == [r.shape for r in ref]
        assert [o.shape[1] for o in outs] == model.out_channels
        assert all(torch.isfinite(o).all() for o in outs)


def test_out_channels_and_strides_are_the_wrapped_backbones():
    van = build('van-b0')
    assert van.out_channels == van.backbone.out_channels == [32, 64, 160, 256]
    assert van.strides == van.backbone.strides == [4, 8, 16, 32]
    resnet = build('mmseg-resnet50v1c')  # dilated: strides from the maps, not the conv strides
    assert resnet.out_channels == [256, 512, 1024, 2048] and resnet.strides == [4, 8, 8, 8]
    pose = build('mmpose-resnet50')
    assert pose.out_channels == [512, 1024, 2048] and pose.strides == [8, 16, 32]
    assert len(pose.heads) == 4  # every stage gets a head, returned or not


@pytest.mark.parametrize('name', ['mmdet-resnet50', 'van-b0', 'nat-mini'])
def test_identity_start_gives_exactly_the_backbones_features(name):
    model = build(name, identity_init=True).train()
    bare = bare_twin(model, name)
    x = torch.randn(2, 3, 45, 61)
    for out, ref in zip(model(x), bare(x)):
        assert torch.equal(out, ref)


def test_identity_start_keeps_a_pretrained_backbone_as_loaded(tmp_path):
    source = MODELS.build(dict(type='VAN', arch='b0')).eval()
    path = tmp_path / 'van_b0.pth'
    torch.save(source.state_dict(), path)
    model = MODELS.build(dict(type='MEDUSA', identity_init=True, backbone=dict(
        type='VAN', arch='b0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))))
    model.init_weights()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for out, ref in zip(model.eval()(x), source(x)):
            assert torch.equal(out, ref)


def _head_inputs(model):
    """The resized body map each head receives, recorded for autograd.grad."""
    seen = {}
    for level, head in model.heads.items():
        head.conv.register_forward_pre_hook(
            lambda mod, args, level=level: seen.__setitem__(level, args[0]))
    return seen


@pytest.mark.parametrize('name', ['mmdet-resnet50', 'nat-mini'])
def test_gradients_reach_the_body_from_every_level(name):
    model = build(name).train()
    seen = _head_inputs(model)
    loss = sum(o.square().mean() for o in model(torch.randn(2, 3, 53, 71)))
    grads = torch.autograd.grad(loss, [seen[k] for k in sorted(seen)], retain_graph=True)
    assert len(grads) == 4 and all(g.abs().sum() > 0 for g in grads)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.body.parameters())


def test_identity_start_trains_the_heads_first():
    model = build('van-b0', identity_init=True).train()
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert all(h.conv.weight.grad.abs().sum() > 0 for h in model.heads.values())
    assert all(p.grad is None or not p.grad.any() for p in model.body.parameters())  # A = 0


def test_levels_choose_the_stages_with_heads():
    model = build('van-b0', levels=(2, 3)).eval()
    assert sorted(model.heads) == ['2', '3']
    x = torch.randn(1, 3, 64, 64)
    bare = bare_twin(model, 'van-b0')
    with torch.no_grad():
        outs, ref = model(x), bare(x)
    assert torch.equal(outs[0], ref[0]) and torch.equal(outs[1], ref[1])
    assert not torch.allclose(outs[2], ref[2])
    with pytest.raises(ValueError, match='levels'):
        build('van-b0', levels=(4, ))


def test_activation_checkpointing_re_runs_the_heads_in_backward():
    check_with_cp(lambda with_cp: MODELS.build(dict(
        type='MEDUSA', backbone=dict(type='VAN', arch='b0', with_cp=with_cp))))


def test_a_deep_copy_uses_its_own_heads():
    model = build('van-b0').eval()
    twin = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        twin.heads['0'].conv.bias.fill_(1.0)
        assert not torch.allclose(twin(x)[0], before)
        assert torch.equal(model(x)[0], before)


def test_a_backbone_without_nchw_stage_outputs_is_a_clear_error():
    tiny = dict(embed_dims=[16, 32, 32, 32], depths=[2, 2, 2, 1], num_heads=[2, 2, 2, 2],
                mlp_ratios=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1], pos_embed_size=56)
    with pytest.raises(ValueError, match='stage_modules'):
        MODELS.build(dict(type='MEDUSA', backbone=dict(type='SGFormer', arch=tiny)))
    with pytest.raises(ValueError, match='no module'):
        MODELS.build(dict(type='MEDUSA', backbone=dict(type='VAN', arch='b0'),
                          stage_modules=['stages.0.nothing']))


def test_neck_check_sees_the_wrapped_channels():
    model = dict(backbone=dict(type='MEDUSA', backbone=dict(type='VAN', arch='b0')),
                 neck=dict(type='FPN', in_channels=[64, 128, 320, 512], out_channels=32))
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(ConfigError, match=r'\[32, 64, 160, 256\]'):
            check_channels(model)
        model['neck']['in_channels'] = [32, 64, 160, 256]
        check_channels(model)
