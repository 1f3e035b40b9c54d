# Mask R-CNN 1x on COCO with HaloNet-50ts (ImageNet-pretrained: timm's halonet50ts.a1h_in1k
# weights load as they are). HaloNet has no official detection configs; as a BatchNorm bottleneck
# network of ResNet-50's widths it takes mmdet's ResNet-50 1x recipe: SGD lr 0.02, momentum 0.9,
# weight decay 1e-4, batch 16, 12 epochs (steps at 8 and 11). Inputs need no 256-multiple padding.
_base_ = [
    '../_base_/models/mask-rcnn_halonet50ts_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-attn-weights/halonet50ts_a1h2_256-f3a3daee.pth'  # noqa: E501
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint=pretrained)))
