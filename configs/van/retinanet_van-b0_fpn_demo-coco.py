# Demo twin of retinanet_van-b0_fpn_1x_coco.py: the same backbone and detector, trained from
# scratch (no pretrained weights) on the generated COCO-format set; `make demo` runs it. For the
# 2-core CPU budget the FPN and head are slimmed (128 channels, 2 stacked convs instead of 256, 4):
# at 256/4 the head alone costs ~3.6 GMACs per 192x192 image, 8x the backbone.
_base_ = [
    '../_base_/models/retinanet_van-b0_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    neck=dict(out_channels=128),
    bbox_head=dict(num_classes=3, in_channels=128, feat_channels=128, stacked_convs=2))
default_hooks = dict(checkpoint=dict(interval=6), logger=dict(interval=10))
