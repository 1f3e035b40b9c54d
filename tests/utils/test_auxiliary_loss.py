"""Auxiliary losses of mixers reach the training loss of mmdet, mmseg and mmpose models.

A small test mixer sets ``self.auxiliary_losses = {'loss_test_aux': aux_scale * mean(y^2)}`` in a
training forward; ``aux_scale`` is used nowhere else, so it gets a gradient only if the auxiliary
loss is part of what the model's ``train_step`` back-propagates.
"""
import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from plugins.registry import MODELS
from plugins.utils.auxiliary_loss import (AuxiliaryLossHook, attach_auxiliary_losses,
                                          collect_auxiliary_losses)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64])
TEST_MIXER = 'AuxiliaryLossTestMixer'


class AuxiliaryLossTestMixer(nn.Module):
    """A 1x1 conv that reports an auxiliary loss with a parameter of its own."""

    def __init__(self, dim, num_heads=1):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)
        self.aux_scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        y = self.proj(x)
        if self.training:
            self.auxiliary_losses = {'loss_test_aux': self.aux_scale * y.square().mean()}
        return y


@pytest.fixture(scope='module', autouse=True)
def test_mixer_registered():
    MODELS.register_module(name=TEST_MIXER, module=AuxiliaryLossTestMixer, force=True)
    yield
    MODELS._module_dict.pop(TEST_MIXER, None)


def aux_scales(model):
    return [m.aux_scale for m in model.modules() if isinstance(m, AuxiliaryLossTestMixer)]


def train_one_step_and_check(model, data):
    """The loss dict holds the auxiliary loss and its gradient reaches every test mixer; then one
    ``train_step`` logs it and moves ``aux_scale``."""
    AuxiliaryLossHook().before_train(SimpleNamespace(model=model))
    model.train()
    scales = aux_scales(model)
    assert len(scales) == 4  # one block per stage
    losses = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')
    assert 'loss_test_aux' in losses
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(s.grad is not None and s.grad.abs() > 0 for s in scales)
    model.zero_grad()
    before = [s.detach().clone() for s in scales]
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(copy.deepcopy(data), optim)
    assert log_vars['loss_test_aux'] > 0
    assert all(not torch.equal(s.detach(), b) for s, b in zip(scales, before))
    assert not any(getattr(m, 'auxiliary_losses', None) for m in model.modules())  # cleared


def build(config, scope, **overrides):
    """The config's model with the tiny arch and the test mixer in every stage."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone = dict(cfg.model.backbone, arch=TINY_ARCH, mixers=dict(type=TEST_MIXER))
    model_cfg = Config(dict(model=cfg.model))
    model_cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg.model)


# ---- the collector ---------------------------------------------------------------------------
def test_collector_sums_same_named_losses_and_clears_them():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].auxiliary_losses = {'loss_a': torch.tensor(1.), 'loss_b': torch.tensor(2.)}
    model[2].auxiliary_losses = {'loss_a': torch.tensor([3., 5.])}  # averaged, as mmengine does
    losses = collect_auxiliary_losses(model)
    assert losses == {'loss_a': torch.tensor(5.), 'loss_b': torch.tensor(2.)}
    assert model[0].auxiliary_losses == {} and collect_auxiliary_losses(model) == {}


def test_collector_refuses_names_that_mmengine_would_not_add():
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].auxiliary_losses = {'commitment': torch.tensor(1.)}
    with pytest.raises(ValueError, match='must start with "loss"'):
        collect_auxiliary_losses(model)


def test_attaching_twice_adds_the_losses_once():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(1, 1)

        def loss(self):
            self.inner.auxiliary_losses = {'loss_aux': torch.tensor(2.)}
            return {'loss_main': torch.tensor(1.)}

    model = attach_auxiliary_losses(attach_auxiliary_losses(Model()))
    assert model.loss() == {'loss_main': torch.tensor(1.), 'loss_aux': torch.tensor(2.)}
    copied = copy.deepcopy(model)  # the copy's wrapper calls the copy's own loss
    assert copied.loss() == {'loss_main': torch.tensor(1.), 'loss_aux': torch.tensor(2.)}
    assert copied.inner.auxiliary_losses == {} and copied.loss.__self__ is copied


# ---- mmdet, mmseg, mmpose --------------------------------------------------------------------
def test_auxiliary_loss_trains_in_mmdet(tmp_path):
    from mmdet.testing import demo_mm_inputs
    config = tmp_path / 'retinanet_mixerformer.py'  # RetinaNet: the lightest mmdet detector
    config.write_text("_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'\n"
                      "model = dict(backbone=dict(_delete_=True, type='MixerFormer'))\n")
    model = build(str(config), 'mmdet', **{
        'neck.in_channels': TINY_ARCH['embed_dims'], 'neck.out_channels': 16,
        'bbox_head.in_channels': 16, 'bbox_head.feat_channels': 16, 'bbox_head.num_classes': 3})
    data = demo_mm_inputs(batch_size=1, image_shapes=[(3, 64, 96)], num_items=[2],
                          num_classes=3)
    with DefaultScope.overwrite_default_scope('mmdet'):
        train_one_step_and_check(model, data)


def test_auxiliary_loss_trains_in_mmseg():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    model = build('configs/mixerformer/upernet_mixerformer-s12-neighborhood_demo-ade20k.py',
                  'mmseg', **{'data_preprocessor.size': (64, 64),
                              'decode_head.in_channels': TINY_ARCH['embed_dims'],
                              'decode_head.channels': 16, 'auxiliary_head.in_channels': 48,
                              'auxiliary_head.channels': 16})
    samples = []
    for _ in range(2):  # BN of the pyramid pooling needs more than one sample
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 6, (1, 64, 64)))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)] * 2,
                data_samples=samples)
    with DefaultScope.overwrite_default_scope('mmseg'):
        train_one_step_and_check(model, data)


def test_auxiliary_loss_trains_in_mmpose():
    from mmpose.testing import get_packed_inputs
    model_cfg = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type='MixerFormer', arch=TINY_ARCH, mixers=dict(type=TEST_MIXER),
                      out_indices=(3, )),
        head=dict(type='HeatmapHead', in_channels=64, out_channels=17,
                  deconv_out_channels=(16, 16), deconv_kernel_sizes=(4, 4),
                  loss=dict(type='KeypointMSELoss', use_target_weight=True),
                  decoder=dict(type='MSRAHeatmap', input_size=(128, 128),
                               heatmap_size=(16, 16), sigma=2)))
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(model_cfg)
        data = get_packed_inputs(batch_size=2, img_shape=(128, 128), input_size=(128, 128),
                                 heatmap_size=(16, 16), with_reg_label=False,
                                 with_simcc_label=False)
        train_one_step_and_check(model, data)


def test_mixerformer_warns_once_when_nobody_collects_the_losses(monkeypatch):
    import plugins.backbones.mixerformer as mixerformer
    messages = []
    monkeypatch.setattr(mixerformer, 'print_log', lambda msg, **kw: messages.append(msg))
    model = mixerformer.MixerFormer(TINY_ARCH, mixers=dict(type=TEST_MIXER)).train()
    x = torch.randn(1, 3, 32, 32)
    model(x)
    assert not messages  # the first forward: nothing left over yet
    for _ in range(2):
        model(x)
    assert len(messages) == 1 and "dict(type='AuxiliaryLossHook')" in messages[0]
