# Mask R-CNN 1x on COCO with RaftMLP-S (ImageNet-pretrained: the official training's
# last_model_0.pt, read by the raftmlp converter), as the official maskrcnn_raftmlp_s_fpn_1x_coco
# config: AdamW lr 1e-4, weight decay 1e-4, batch 16, 12 epochs (steps at 8 and 11, 500 linear
# warm-up iterations), mmdet's standard pipeline. The authors report no number (their abstract:
# "it did not have significant performance").
_base_ = [
    '../_base_/models/mask-rcnn_raftmlp-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# No official ImageNet weights of RaftMLP-S are published (the official README links none):
# pre-train it with the official code and place the file at checkpoints/raftmlp_s_in1k.pt, or drop
# init_cfg to train from scratch.
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='checkpoints/raftmlp_s_in1k.pt')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
