# UperNet on a PyramidTNT-S backbone (model only): the four stages (strides 8 / 16 / 32 / 64) feed
# the head, the auxiliary FCN head reads stage 3. SyncBN in the stem, stochastic depth 0.1.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=[128, 256, 512, 512], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150))
