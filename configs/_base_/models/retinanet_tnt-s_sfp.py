# RetinaNet on a TNT-S backbone (model only) with ViTDet's simple feature pyramid in place of
# the FPN (see mask-rcnn_tnt-s_sfp.py): RetinaNet's levels P3-P7 (strides 8 to 128) are the
# last stride-16 map up-sampled once, as it is, max-pooled, then max-pooled twice more.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TNT',
        arch='small',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=[384],
        out_channels=256,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5))
