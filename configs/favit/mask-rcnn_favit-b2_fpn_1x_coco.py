# Mask R-CNN 1x on COCO with FaViT-B2 (ImageNet-pretrained), as the official
# mask_rcnn_favit_b2_fpn_1x_coco config: AdamW lr 1e-4, weight decay 0.05, batch 16 (8 GPUs x 2),
# 12 epochs (steps at 8 and 11, 500 linear warm-up iterations).
_base_ = [
    '../_base_/models/mask-rcnn_favit-b2_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# No official ImageNet weights of FaViT-B2 are published (the README's lists are empty):
# pre-train it and place the file at checkpoints/favit_b2.pth, or drop init_cfg to train
# from scratch.
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/favit_b2.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
