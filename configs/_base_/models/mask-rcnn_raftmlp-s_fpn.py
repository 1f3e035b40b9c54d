# Mask R-CNN with FPN on a RaftMLP-S backbone (model only), as the official
# maskrcnn_raftmlp_s_fpn_1x_coco config (DetRaftMLPSmall: no stochastic depth; the stride-4 map
# is level 0's embedding; token mixing on the 224-pretraining grids, bicubic there and back).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='RaftMLP',
        arch='s',
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[64, 128, 256, 512]))
