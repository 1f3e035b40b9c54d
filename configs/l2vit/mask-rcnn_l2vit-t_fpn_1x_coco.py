# Mask R-CNN 1x on COCO with L2ViT-T (the official ImageNet release, read by the l2vit converter),
# as the official maskrcnn_1x_l2vit_v0_tiny config: AdamW lr 1e-4, weight decay 0.05, batch 16,
# 12 epochs (steps at 8 and 11). The official config trains with the DETR-style multi-scale
# AutoAugment pipeline; this one keeps mmdet's standard 1333x800 pipeline. The official README
# publishes no downstream numbers.
_base_ = [
    '../_base_/models/mask-rcnn_l2vit-t_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Tiny-checkpoint-best-ema.pth'  # noqa: E501
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
