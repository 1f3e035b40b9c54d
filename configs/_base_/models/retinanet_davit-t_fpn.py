# RetinaNet with FPN on a DaViT-T backbone (model only), as the official davit_retinanet_1x config:
# stochastic depth 0.1, the FPN from stage 2 on (official: four stages with start_level=1; here
# stages 2-4 are the only outputs, so no output norm is built that nothing reads).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DaViT',
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
