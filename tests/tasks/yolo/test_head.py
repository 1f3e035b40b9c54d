"""YOLOv8Head on hand-made outputs: the losses' values, their batch scaling, decoding and NMS."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

from plugins.tasks.yolo.head import YOLOv8Head
from plugins.tasks.yolo.hooks import YOLOParamSchedulerHook

NEG = -30.


def head():
    return YOLOv8Head(num_classes=2, in_channels=[8], strides=[8],
                      train_cfg=dict(assigner=dict(type='YOLOTaskAlignedAssigner', topk=10),
                                     alpha=0.5, beta=6.0),
                      test_cfg=dict(nms_pre=100, score_thr=0.3,
                                    nms=dict(type='nms', iou_threshold=0.7), max_per_img=10))


def outputs(batch=1):
    """A 2x2 map at stride 8 (cell centres 4 and 12): the top-left cell predicts class 1 at
    probability 1/2 and the box (0, 0, 8, 6): left, top, right 0.5 stride (bins 0 and 1 at 1/2
    each), bottom 0.25 stride (bins 0 and 1 at 3/4, 1/4); every other logit is very negative."""
    cls = torch.full((batch, 2, 2, 2), NEG)
    cls[:, 1, 0, 0] = 0.
    dist = torch.full((batch, 4, 16, 2, 2), NEG)
    dist[:, :, :2, 0, 0] = 0.
    dist[:, 3, 0, 0, 0] = math.log(3)
    return [cls], [dist.reshape(batch, 64, 2, 2)]


def gt():
    return InstanceData(bboxes=torch.tensor([[0., 0., 8., 8.]]), labels=torch.tensor([1]))


# CIoU of (0, 0, 8, 6) with (0, 0, 8, 8): IoU 3/4, centres 1 apart (rho^2 1), enclosing
# diagonal^2 128, aspect term v = 4 / pi^2 (atan(1) - atan(4 / 3))^2 weighted v / (1 - IoU + v)
V = 4 / math.pi ** 2 * (math.atan(1) - math.atan(4 / 3)) ** 2
CIOU = 0.75 - 1 / 128 - V * V / (0.25 + V)
# DFL per side: target 0.5 stride = bins 0 and 1 at 1/2 each; cross-entropies against the
# predicted (1/2, 1/2) on three sides and (3/4, 1/4) on the bottom one
DFL_SIDES = 3 * math.log(2) + 0.5 * (-math.log(0.75) - math.log(0.25))


def expected_losses(images):
    """One positive per image, its class target the normalised metric: its CIoU. The class
    logit 0 gives BCE log 2 whatever the target; sums divided by the targets' sum (at least 1),
    times the images (Ultralytics' scaling)."""
    total = max(images * CIOU, 1)
    return dict(loss_cls=0.5 * images * math.log(2) / total * images,
                loss_bbox=7.5 * images * (1 - CIOU) * CIOU / total * images,
                loss_dfl=1.5 / 4 * images * DFL_SIDES * CIOU / total * images)


@pytest.mark.parametrize('images', [1, 2])
def test_losses_on_a_hand_made_case(images):
    cls, dist = outputs(batch=images)
    losses = head().loss_by_feat(cls, dist, [gt()] * images, [dict(img_shape=(16, 16))] * images)
    for name, value in expected_losses(images).items():
        assert losses[name].item() == pytest.approx(value, rel=1e-4), name


def test_an_image_without_objects_has_only_a_class_loss():
    cls, dist = outputs()
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = head().loss_by_feat(cls, dist, [empty], [dict(img_shape=(16, 16))])
    assert losses['loss_bbox'].item() == 0 and losses['loss_dfl'].item() == 0
    # all targets 0: the logit at 0 costs log 2, the seven at -30 nothing; divided by 1
    assert losses['loss_cls'].item() == pytest.approx(0.5 * math.log(2), rel=1e-5)


def test_prediction_decodes_the_box_and_rescales_it():
    cls, dist = outputs()
    results = head().predict_by_feat(cls, dist, [dict(img_shape=(16, 16), scale_factor=(2., 2.))],
                                     rescale=True)
    assert results[0].labels.tolist() == [1]
    assert results[0].scores.tolist() == pytest.approx([0.5])
    assert results[0].bboxes.tolist() == [pytest.approx([0., 0., 4., 3.], abs=1e-5)]


def test_head_bias_prior_as_ultralytics():
    h = head()
    h.init_weights()
    assert torch.allclose(h.box_branches[0][-1].bias, torch.ones(64))
    assert h.cls_branches[0][-1].bias[0].item() == pytest.approx(math.log(5 / 2 / 80 ** 2))


def fake_runner(iteration, epoch, iters_per_epoch=10, max_epochs=30):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4),
        paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.)))
    return SimpleNamespace(model=model, optim_wrapper=wrapper, iter=iteration, epoch=epoch,
                           max_epochs=max_epochs, train_dataloader=range(iters_per_epoch))


def rates(runner):
    groups = runner.optim_wrapper.optimizer.param_groups
    return [(round(g['lr'], 6), round(g['momentum'], 6)) for g in groups[:2]]  # weight, bias


@pytest.mark.parametrize('iteration,epoch,expected', [
    (0, 0, [(0.0, 0.8), (0.1, 0.8)]),                       # warm-up start: 100 iterations
    (50, 5, [(0.004175, 0.8685), (0.054175, 0.8685)]),      # halfway, lf(5) = 0.835
    (150, 15, [(0.00505, 0.937), (0.00505, 0.937)]),        # after: lr0 * lf(15)
])
def test_schedule_warms_biases_down_and_the_rest_up_then_decays_linearly(iteration, epoch,
                                                                          expected):
    runner = fake_runner(iteration, epoch)
    hook = YOLOParamSchedulerHook()
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert rates(runner) == expected
