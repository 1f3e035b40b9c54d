# Mask R-CNN 1x on COCO with BiFormer-S (ImageNet-pretrained, the official release), as the official
# maskrcnn.1x.biformer_small config: AdamW lr 1e-4, weight decay 0.05 (none on norms), batch 16,
# 12 epochs (steps at 8 and 11). Paper: 47.8 box AP / 43.2 mask AP.
_base_ = [
    '../_base_/models/mask-rcnn_biformer-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvChHDyM-x9KWRBZ832/root/content'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
