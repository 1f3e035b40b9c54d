# Mask R-CNN with FPN on a PyramidTNT-S backbone (model only). PyramidTNT's four stages are at
# strides 8 / 16 / 32 / 64 (the official pyramid_tnt.py: a stride-8 convolutional stem), one
# octave coarser than ResNet's 4-32: the FPN levels are at strides 8-128, so the RPN anchors
# (scale 4 instead of 8) keep the usual sizes 32-512 and the RoI extractors read strides 8-64.
# SyncBN in the stem (batch 2 per GPU), stochastic depth 0.1 (its ImageNet training).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[128, 256, 512, 512], num_outs=5),
    rpn_head=dict(anchor_generator=dict(scales=[4], strides=[8, 16, 32, 64, 128])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64]),
        mask_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))
