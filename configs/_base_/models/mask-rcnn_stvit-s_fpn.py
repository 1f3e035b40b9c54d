# Mask R-CNN with FPN on an STViT-S backbone (model only): super token attention (cells 8, 4) in
# stages 1-2, global attention in stages 3-4; stochastic depth 0.1 (the ImageNet training's).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='STViT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 320, 512]))
