# UperNet on the Mamba-YOLO-T backbone, auxiliary FCN head on stage 3 (model only).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, type='MambaYOLO', arch='t', out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[32, 64, 128, 256], num_classes=150),
    auxiliary_head=dict(in_channels=128, num_classes=150))
