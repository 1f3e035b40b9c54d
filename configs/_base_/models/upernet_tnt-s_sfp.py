# UperNet on a TNT-S backbone (model only): ViTDet's simple feature pyramid (strides 4 / 8 /
# 16 / 32 from the last stride-16 map, see mask-rcnn_tnt-s_sfp.py) feeds the UperNet head; the
# auxiliary FCN head reads the stride-16 level. Stochastic depth 0.1.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='TNT',
        arch='small',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(type='SimpleFeaturePyramid', in_channels=[384], out_channels=256),
    decode_head=dict(in_channels=[256, 256, 256, 256], num_classes=150),
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150))
