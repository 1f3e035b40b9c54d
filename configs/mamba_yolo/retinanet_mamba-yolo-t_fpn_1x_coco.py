# RetinaNet 1x on COCO with the Mamba-YOLO-T backbone. Mamba-YOLO has no ImageNet weights (the
# paper trains its detector from scratch; its paper has no RetinaNet / Mask R-CNN / UperNet
# results): this trains from scratch, or starts from a Mamba-YOLO COCO detector's backbone with
# init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.'). AdamW lr 1e-4, weight
# decay 0.05, batch 16 (8 GPUs x 2), 12 epochs.
_base_ = [
    '../_base_/models/retinanet_mamba-yolo-t_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
