# RetinaNet with FPN on a DiNAT-Tiny backbone (model only). The official release has no RetinaNet
# config; the backbone is set as in its Mask R-CNN config: stochastic depth 0.2 and the per-layer
# detection dilations ('detection' = level by level [1, 28, 1], [1, 7, 1, 14],
# [1, 3, 1, 5, 1, 7] x 3, [1, 3, 1, 3, 1]; see plugins.backbones.nat.dinat_dilations).
# The FPN reads stages 2-4 only, so they are the backbone's only outputs: no output norm is built
# that nothing reads (DDP refuses parameters without gradients).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DiNAT',
        arch='tiny',
        dilations='detection',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))
