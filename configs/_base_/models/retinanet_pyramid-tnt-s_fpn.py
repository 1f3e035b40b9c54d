# RetinaNet with FPN on a PyramidTNT-S backbone (model only). Its stages at strides 8 / 16 / 32 /
# 64 are RetinaNet's P3-P6 directly (the FPN from stage 1, start_level=0), P7 a stride-2
# convolution on the last stage: the usual anchors fit unchanged. SyncBN in the stem, stochastic
# depth 0.1.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[128, 256, 512, 512], start_level=0, num_outs=5))
