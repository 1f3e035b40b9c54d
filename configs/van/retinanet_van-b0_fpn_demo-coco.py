# Demo twin of retinanet_van-b0_fpn_1x_coco.py: the same model, trained from scratch (no
# pretrained weights) on the generated COCO-format set; `make demo` runs it.
_base_ = [
    '../_base_/models/retinanet_van-b0_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(bbox_head=dict(num_classes=3))
default_hooks = dict(checkpoint=dict(interval=12), logger=dict(interval=10))
