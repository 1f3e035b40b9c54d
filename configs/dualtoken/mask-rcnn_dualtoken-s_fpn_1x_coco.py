# Mask R-CNN 1x on COCO with DualToken-ViT-S (pre-trained on ImageNet by the user: no weights were
# released). The paper follows LightViT for detection; LightViT's
# mask_rcnn_lightvit_tiny_fpn_1x_coco recipe: AdamW lr 2e-4, weight decay 0.04 (none on norms and
# the global tokens), batch 16 (8 GPUs x 2), 12 epochs (steps at 8 and 11, 500 linear warm-up
# iterations).
_base_ = [
    '../_base_/models/mask-rcnn_dualtoken-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
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
