# Mask R-CNN with FPN on a DualToken-ViT-S backbone (model only). Three stages at strides 8 / 16 /
# 32 (LightViT's layout): the FPN adds two pooled levels (strides 8 ... 128), the anchors and RoI
# extractors follow, and anchor scale 4 keeps the base anchors at 32 ... 512 pixels as with the
# usual strides 4 ... 64. Stochastic depth 0.1 (LightViT's detection setting).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DualTokenViT',
        arch='s',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256], num_outs=5),
    rpn_head=dict(anchor_generator=dict(scales=[4], strides=[8, 16, 32, 64, 128])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64]),
        mask_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))
