# Mask R-CNN 1x on COCO with DiNAT-Tiny (ImageNet-pretrained, the official release's checkpoint as
# it is). Optimizer as the official mask_rcnn_dinat_tiny_3x_coco config: AdamW lr 1e-4, betas (0.9,
# 0.999), weight decay 0.05, none on the relative position biases (rpb) and the norms; batch 16.
# The official recipe trains 3x (36 epochs, steps at 27 / 33) with DETR-style multi-scale crops and
# reports 48.6 box AP / 43.5 mask AP; this is mmdet's 1x schedule and pipeline.
_base_ = [
    '../_base_/models/mask-rcnn_dinat-t_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
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
