# RetinaNet with FPN on the Mamba-YOLO-T backbone (P3-P5; model only).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='MambaYOLO', arch='t', out_indices=(1, 2, 3)),
    neck=dict(in_channels=[64, 128, 256], start_level=0, num_outs=5))
