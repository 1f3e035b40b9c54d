# RetinaNet with FPN on a RaftMLP-S backbone (model only), as the official
# retinanet_raftmlp_s_fpn_1x_coco config (FPN from level 2 on: official four levels with
# start_level=1; here levels 2-4 are the only outputs).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='RaftMLP',
        arch='s',
        out_indices=(1, 2, 3)),
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))
