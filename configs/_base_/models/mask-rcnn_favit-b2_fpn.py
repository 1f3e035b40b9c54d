# Mask R-CNN with FPN on a FaViT-B2 backbone (model only), as the official
# mask_rcnn_favit_b2_fpn_1x_coco config (q2479036243/FaViT history): stochastic depth 0.1.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='FaViT',
        arch='b2',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256, 512]))
