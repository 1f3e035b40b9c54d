# UperNet on a Hyena ViT-Tiny backbone (model only): the simple feature pyramid (strides 4-32,
# 256 channels) from the last stride-16 map feeds the UperNet head; auxiliary FCN head on the
# stride-16 level.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='HyenaViT',
        arch='tiny',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(
        type='SimpleFeaturePyramid',
        in_channels=192,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5)),
    decode_head=dict(in_channels=[256, 256, 256, 256], num_classes=150),
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150))
