# RetinaNet with FPN on a NAT-Tiny backbone (model only). The official release has no RetinaNet
# config; the backbone is set as in its Mask R-CNN config: stochastic depth 0.2.
# The FPN reads stages 2-4 only, so they are the backbone's only outputs: no output norm is built
# that nothing reads (DDP refuses parameters without gradients).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='NAT',
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))
