# Semantic FPN on a VAN-B0 backbone (model only).
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='VAN',
        arch='b0',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[32, 64, 160, 256]),
    decode_head=dict(num_classes=150))
