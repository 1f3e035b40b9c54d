# RetinaNet 1x on COCO with BiFormer-S (ImageNet-pretrained, the official release), as the official
# retinanet.1x.biformer_small config: AdamW lr 1e-4, weight decay 1e-4, batch 16, 12 epochs.
# Paper: 45.9 box AP.
_base_ = [
    '../_base_/models/retinanet_biformer-s_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvChHDyM-x9KWRBZ832/root/content'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
