"""SRModel, its data preprocessor and the visualization hook."""
import os
import types

import torch
from mmengine.registry import HOOKS, MODELS
from mmengine.structures import BaseDataElement


def batch(n=2, h=10, w=12, scale=2):
    samples = []
    for _ in range(n):
        s = BaseDataElement(metainfo=dict(scale=scale, img_name='img', dataset_name='Set5'))
        s.gt_img = torch.randint(0, 256, (3, h * scale, w * scale), dtype=torch.uint8)
        samples.append(s)
    inputs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def build(**kw):
    return MODELS.build(dict(type='SRModel', generator=dict(type='DLGSANet', arch=dict(
        dim=12, groups=1, blocks=1), upscale=2), **kw))


def test_preprocessor_maps_uint8_to_unit_range():
    model = build()
    data = model.data_preprocessor(batch(), training=True)
    assert data['inputs'].dtype == torch.float32 and data['inputs'].max() <= 1


def test_loss_is_l1_by_default_and_configurable():
    model = build()
    data = model.data_preprocessor(batch(), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_pix'} and losses['loss_pix'] > 0
    mse = build(pixel_loss=dict(type='PixelMSELoss'))
    assert type(mse.pixel_loss).__name__ == 'PixelMSELoss'


def test_predict_gives_images_in_0_255_with_the_gt_size():
    model = build().eval()
    data = model.data_preprocessor(batch(1, 9, 11), training=False)
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert out[0].pred_img.shape == (3, 18, 22)
    assert 0 <= out[0].pred_img.min() and out[0].pred_img.max() <= 255


def test_train_step_updates_the_weights():
    from mmengine.optim import OptimWrapper
    model = build()
    wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), 1e-3))
    before = model.generator.conv_first.weight.clone()
    log = model.train_step(batch(), wrapper)
    assert 'loss_pix' in log
    assert not torch.equal(before, model.generator.conv_first.weight)


def test_visualization_hook_writes_pngs_only_when_drawing(tmp_path):
    model = build().eval()
    with torch.no_grad():
        outputs = model.test_step(batch(2))
    runner = types.SimpleNamespace(work_dir=str(tmp_path), timestamp='t')
    hook = HOOKS.build(dict(type='SRVisualizationHook'))
    hook.after_test_iter(runner, 0, None, outputs)
    assert not os.path.exists(tmp_path / 't')
    hook = HOOKS.build(dict(type='SRVisualizationHook', draw=True, test_out_dir=str(tmp_path)))
    hook.after_test_iter(runner, 0, None, outputs)
    assert os.listdir(tmp_path / 'Set5') == ['img.png']
