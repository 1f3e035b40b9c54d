# Mask R-CNN with FPN on an SG-Former-S backbone (model only). The release has no detection code;
# stochastic depth 0.2 (the ImageNet recipe uses 0.1 for S; dense tasks usually double it).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
