# Mask R-CNN 1x on COCO with InLine-PVT-S (the official ImageNet release, read by the inline
# converter). The InLine release has no detection code; the optimiser is PVT's (the architecture
# InLine-PVT keeps): AdamW, lr 1e-4, weight decay 1e-4, batch 16 (8 GPUs x 2), 12 epochs (steps at
# 8 and 11), mmdet's standard 1333x800 pipeline.
_base_ = [
    '../_base_/models/mask-rcnn_inline-pvt-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://cloud.tsinghua.edu.cn/f/1ab953b2479d433080a3/?dl=1'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained',
                                         checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
