# Mask R-CNN on a Hyena ViT-Tiny backbone (all-Hyena Hyena-DeiT-T; model only): the backbone's last
# stride-16 map (its final LayerNorm) through ViTDet's simple feature pyramid (strides 4-32, and
# a max-pooled stride 64 for the RPN) instead of FPN. The official code has no dense-task model;
# stochastic depth 0.1 as DeiT-T's ImageNet training. Hybrid: arch='tiny-hybrid'.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='HyenaViT',
        arch='tiny',
        out_indices=(3, ),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=192,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5))
