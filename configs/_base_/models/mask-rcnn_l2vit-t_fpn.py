# Mask R-CNN with FPN on an L2ViT-T backbone (model only), as the official
# maskrcnn_1x_l2vit_v0_tiny config: window 7, stochastic depth 0.1, a LayerNorm on every stage
# output.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[96, 192, 384, 768]))
