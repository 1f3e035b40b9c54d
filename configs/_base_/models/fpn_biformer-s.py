# Semantic FPN on a BiFormer-S backbone (model only), as the official sfpn config: 8 regions per
# side (512 crops), stochastic depth 0.15.
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='BiFormer',
        arch='s',
        n_win=8,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.15,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150))
