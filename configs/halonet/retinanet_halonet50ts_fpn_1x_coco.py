# RetinaNet 1x on COCO with HaloNet-50ts (ImageNet-pretrained: timm's halonet50ts.a1h_in1k),
# with mmdet's ResNet-50 RetinaNet 1x recipe (no official HaloNet detection configs): SGD lr 0.01,
# momentum 0.9, weight decay 1e-4, batch 16, 12 epochs.
_base_ = [
    '../_base_/models/retinanet_halonet50ts_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-attn-weights/halonet50ts_a1h2_256-f3a3daee.pth'  # noqa: E501
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
