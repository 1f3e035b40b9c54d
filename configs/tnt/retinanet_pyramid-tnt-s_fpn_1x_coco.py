# RetinaNet 1x on COCO with PyramidTNT-S (ImageNet-pretrained, as
# mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py): AdamW lr 1e-4, weight decay 0.05 (none on the position
# embeddings, query-key biases and norms), batch 16, 12 epochs, mmdet's standard pipeline.
_base_ = [
    '../_base_/models/retinanet_pyramid-tnt-s_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# The official ImageNet-1K weights of PyramidTNT-S are on a web page that cannot be downloaded
# for you: get them by hand from the Baidu Disk page
# https://pan.baidu.com/s/1xha8x3DTlPq9-KeC6EPPow (password v5w5) and place the file at
# checkpoints/ptnt_s_82.0.pth.tar (docs/model-zoo.md).
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/ptnt_s_82.0.pth.tar')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'outer_pos': dict(decay_mult=0.),
        'inner_pos': dict(decay_mult=0.),
        'relative_pos': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
