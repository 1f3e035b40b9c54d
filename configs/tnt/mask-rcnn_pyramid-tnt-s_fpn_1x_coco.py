# Mask R-CNN 1x on COCO with PyramidTNT-S (ImageNet-pretrained: the official release of
# pyramid_tnt.py's ptnt_s_patch16_256 (huawei-noah/Efficient-AI-Backbones README, BaiduDisk), read
# by the pyramid_tnt converter). The official repository has no detection / segmentation configs:
# AdamW lr 1e-4, weight decay 0.05 (none on the position embeddings, query-key biases and norms),
# batch 16, 12 epochs (steps at 8 and 11), mmdet's standard 1333x800 pipeline, as the toolkit's
# other transformer backbones.
_base_ = [
    '../_base_/models/mask-rcnn_pyramid-tnt-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
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
