# RetinaNet on a Hyena ViT-Tiny backbone (model only): the simple feature pyramid makes strides
# 8, 16, 32 from the last stride-16 map and max-pools strides 64, 128 (RetinaNet's P3-P7).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='HyenaViT',
        arch='tiny',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=192,
        out_channels=256,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5))
