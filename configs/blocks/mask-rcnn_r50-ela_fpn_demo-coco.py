# Demo twin of mask-rcnn_r50-ela_fpn_1x_coco.py: the same model from scratch (no ImageNet
# weights) on the generated COCO-format set.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/demo_coco_instance.py',
    '../_base_/schedules/demo_det.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        init_cfg=None,
        plugins=[dict(cfg=dict(type='ELABlock', variant='B'),
                      stages=(True, True, True, True),
                      position='after_conv3')]),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))
default_hooks = dict(checkpoint=dict(interval=6), logger=dict(interval=10))
