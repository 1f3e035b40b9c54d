# RetinaNet 1x on COCO with ConViT-S (ImageNet-pretrained, as mask-rcnn_convit-s_sfp_1x_coco.py):
# AdamW lr 1e-4, weight decay 0.05 (none on the position embeddings, class token and norms), batch
# 16, 12 epochs, mmdet's standard pipeline.
_base_ = [
    '../_base_/models/retinanet_convit-s_sfp.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://dl.fbaipublicfiles.com/convit/convit_small.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
