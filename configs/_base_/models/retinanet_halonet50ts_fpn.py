# RetinaNet with FPN on a HaloNet-50ts backbone (model only; timm's halonet50ts), with ResNet-50's
# detection settings (stem + stage 1 frozen, BatchNorm statistics frozen).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='HaloNet',
        arch='halonet50ts',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(in_channels=[256, 512, 1024, 2048], start_level=1, num_outs=5))
