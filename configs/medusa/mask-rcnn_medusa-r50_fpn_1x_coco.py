# Mask R-CNN 1x on COCO with MEDUSA around mmdet's ResNet-50 (torchvision weights, identity start:
# the heads begin at zero, so training starts from the plain R50 detector's features). Schedule,
# pipeline and optimiser are mmdet's mask-rcnn_r50_fpn_1x_coco (SGD lr 0.02, batch 16); the body
# and heads train with them from scratch.
_base_ = [
    '../_base_/models/mask-rcnn_medusa-r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
