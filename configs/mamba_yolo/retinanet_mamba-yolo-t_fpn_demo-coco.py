# Demo twin of retinanet_mamba-yolo-t_fpn_1x_coco.py: the same backbone and detector, from
# scratch, on the generated COCO-format set; FPN and head slimmed for the 2-core CPU as the other
# RetinaNet demos (128 channels, 2 stacked convs).
_base_ = [
    '../_base_/models/retinanet_mamba-yolo-t_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    neck=dict(out_channels=128),
    bbox_head=dict(num_classes=3, in_channels=128, feat_channels=128, stacked_convs=2))
default_hooks = dict(checkpoint=dict(interval=6), logger=dict(interval=10))
