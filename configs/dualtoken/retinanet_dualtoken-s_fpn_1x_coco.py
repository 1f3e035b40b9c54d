# RetinaNet 1x on COCO with DualToken-ViT-S (pre-trained on ImageNet by the user: no weights were
# released), with the LightViT detection recipe: AdamW lr 2e-4, weight decay 0.04 (none on norms and
# the global tokens), batch 16, 12 epochs.
_base_ = [
    '../_base_/models/retinanet_dualtoken-s_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained',
                                checkpoint='checkpoints/dualtoken-vit-s_in1k.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.04),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.),
                                    'global_tokens': dict(decay_mult=0.)}))
