# UperNet on a VAN-B0 backbone, auxiliary FCN head on stage 3 (model only).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='VAN',
        arch='b0',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[32, 64, 160, 256], num_classes=150),
    auxiliary_head=dict(in_channels=160, num_classes=150))
