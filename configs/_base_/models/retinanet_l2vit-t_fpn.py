# RetinaNet with FPN on an L2ViT-T backbone (model only), as the official
# retinanet_1x_l2vit_v0_tiny config: stochastic depth 0.1, stages 2-4 only (out_indices 1, 2, 3),
# extra levels on the input.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
