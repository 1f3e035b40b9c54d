# Mask R-CNN with FPN on a DiNAT-Tiny backbone (model only), as the official
# detection/configs/dinat/mask_rcnn_dinat_tiny_3x_coco.py: stochastic depth 0.2 and its per-layer
# dilations ('detection' = level by level [1, 28, 1], [1, 7, 1, 14], [1, 3, 1, 5, 1, 7] x 3,
# [1, 3, 1, 3, 1]; see plugins.backbones.nat.dinat_dilations).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DiNAT',
        arch='tiny',
        dilations='detection',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
