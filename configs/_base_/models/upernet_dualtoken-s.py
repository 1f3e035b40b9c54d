# UperNet on a DualToken-ViT-S backbone (three stages, strides 8 / 16 / 32), auxiliary FCN head on
# stage 2 (model only); stochastic depth 0.1.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='DualTokenViT',
        arch='s',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1),
    decode_head=dict(in_channels=[64, 128, 256], in_index=[0, 1, 2], num_classes=150),
    auxiliary_head=dict(in_channels=128, in_index=1, num_classes=150))
