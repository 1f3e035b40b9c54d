# UperNet on a HaloNet-50ts backbone (timm's halonet50ts), auxiliary FCN head on stage 3 (model
# only). Any crop size: the halo attention pads to its 8x8 blocks inside.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='HaloNet',
        arch='halonet50ts',
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[256, 512, 1024, 2048], num_classes=150),
    auxiliary_head=dict(in_channels=1024, num_classes=150))
