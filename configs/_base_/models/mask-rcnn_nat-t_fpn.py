# Mask R-CNN with FPN on a NAT-Tiny backbone (model only), as the official
# detection/configs/nat/mask_rcnn_nat_tiny_3x_coco.py: stochastic depth 0.2.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='NAT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
