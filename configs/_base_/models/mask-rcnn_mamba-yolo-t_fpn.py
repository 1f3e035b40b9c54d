# Mask R-CNN with FPN on the Mamba-YOLO-T backbone (strides 4-32; model only).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='MambaYOLO', arch='t', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[32, 64, 128, 256]))
