# Demo twin of retinanet_pyramid-tnt-s_fpn_1x_coco.py: the same model (BN instead of SyncBN in the
# stem), from scratch, on the generated COCO-format set.
_base_ = [
    '../_base_/models/retinanet_pyramid-tnt-s_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(interval=12), logger=dict(interval=10))
model = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=True)),
    bbox_head=dict(num_classes=3))
