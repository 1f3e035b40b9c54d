# UperNet on a BiFormer-S backbone, auxiliary FCN head on stage 3 (model only), as the official
# upernet config: 8 regions per side (512 crops), stochastic depth 0.3.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='BiFormer',
        arch='s',
        n_win=8,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,
        norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
