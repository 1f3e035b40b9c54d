# RetinaNet with FPN on an STViT-S backbone (model only), all four stages into the FPN (start level
# 1, extra levels on the input, as mmdet's PVT RetinaNet); stochastic depth 0.1.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='STViT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 320, 512]))
