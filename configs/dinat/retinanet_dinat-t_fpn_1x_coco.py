# RetinaNet 1x on COCO with DiNAT-Tiny (ImageNet-pretrained, the official release's checkpoint as
# it is). The official release has no RetinaNet config: the optimizer is that of its Mask R-CNN
# config (AdamW lr 1e-4, weight decay 0.05, none on rpb and norms), batch 16, mmdet's 1x schedule.
_base_ = [
    '../_base_/models/retinanet_dinat-t_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_tiny_in1k_224.pth'
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'rpb': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}))
