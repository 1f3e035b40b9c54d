# Demo twin of mask-rcnn_mamba-yolo-t_fpn_1x_coco.py: the same model, from scratch, on the
# generated COCO-format set with polygon masks.
_base_ = [
    '../_base_/models/mask-rcnn_mamba-yolo-t_fpn.py',
    '../_base_/datasets/demo_coco_instance.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))
default_hooks = dict(checkpoint=dict(interval=6), logger=dict(interval=10))
