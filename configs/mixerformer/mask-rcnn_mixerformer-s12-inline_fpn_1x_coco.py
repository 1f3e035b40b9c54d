# Mask R-CNN 1x on COCO with MixerFormer-S12, InLine attention (arXiv 2412.06590), a linear
# attention over all tokens of a stage, as the mixer in every stage.
# Every parameter but the mixers' starts from PoolFormer-S12's ImageNet release (the loading report
# lists the mixers' as missing; with layer scale 1e-5 the new mixers start nearly switched off).
# Optimiser as PoolFormer's mask_rcnn_poolformer_s12_fpn_1x_coco: AdamW lr 2e-4, weight decay
# 1e-4, batch 16 (8 GPUs x 2), 12 epochs.
_base_ = [
    '../_base_/models/mask-rcnn_mixerformer-s12_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s12.pth.tar'
model = dict(
    backbone=dict(
        mixers=dict(type='InLineAttention'),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
