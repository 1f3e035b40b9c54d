# RetinaNet 1x on COCO with Hyena ViT-Tiny (ImageNet-pretrained, official key layout) and the
# simple feature pyramid (strides 8-128). No official detection config: AdamW lr 1e-4, weight
# decay 0.05, batch 16, 12 epochs, mmdet's standard pipeline.
_base_ = [
    '../_base_/models/retinanet_hyena-vit-t_sfp.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# No official ImageNet weights of Hyena ViT-Tiny are published (the official README links none):
# pre-train it with the official code and place the file at
# checkpoints/hyena_deit_tiny_in1k.pth, or drop init_cfg to train from scratch.
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='checkpoints/hyena_deit_tiny_in1k.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
