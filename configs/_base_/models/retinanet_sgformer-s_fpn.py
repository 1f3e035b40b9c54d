# RetinaNet with FPN on an SG-Former-S backbone (model only): stochastic depth 0.2, FPN from stage
# 2 with extra convs on the input (the standard RetinaNet neck of pyramid backbones).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512], start_level=1, add_extra_convs='on_input',
              num_outs=5))
