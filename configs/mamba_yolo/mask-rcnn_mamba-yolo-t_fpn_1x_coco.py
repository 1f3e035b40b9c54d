# Mask R-CNN 1x on COCO with the Mamba-YOLO-T backbone (from scratch or from a Mamba-YOLO COCO
# detector's backbone: see retinanet_mamba-yolo-t_fpn_1x_coco.py). AdamW lr 1e-4, weight decay
# 0.05, batch 16 (8 GPUs x 2), 12 epochs.
_base_ = [
    '../_base_/models/mask-rcnn_mamba-yolo-t_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
