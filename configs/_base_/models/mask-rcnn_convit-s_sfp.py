# Mask R-CNN on a ConViT-S backbone (model only) with ViTDet's simple feature pyramid in place of
# the FPN: ConViT is isotropic (every stage at stride 16), so the pyramid (strides 4 / 8 / 16 /
# 32 and a max-pooled stride-64 level for the RPN) is made from its last map alone by
# deconvolutions / pooling (Li et al., arXiv 2203.16527, Sec. 3). An FPN over maps that all share
# one stride has no top-down path to add, so no FPN follows. Stochastic depth 0.1 (ConViT-S's
# ImageNet training).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConViT',
        arch='small',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=[432],
        out_channels=256,
        num_outs=5))
