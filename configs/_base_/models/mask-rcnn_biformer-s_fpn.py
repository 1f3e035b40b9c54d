# Mask R-CNN with FPN on a BiFormer-S backbone (model only), as the official maskrcnn.1x config:
# 16 regions per side (inputs near 800x1333), stochastic depth 0.2.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='BiFormer',
        arch='s',
        n_win=16,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
