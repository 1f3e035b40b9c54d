# Mask R-CNN with FPN on a VAN-B0 backbone (model only).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='VAN',
        arch='b0',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 160, 256]))
