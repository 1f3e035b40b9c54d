# RetinaNet with FPN on a DualToken-ViT-S backbone (model only): the three stages (strides 8 / 16 /
# 32) and two extra convs on the last input make RetinaNet's usual levels (strides 8 ... 128).
# Stochastic depth 0.1.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DualTokenViT',
        arch='s',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256], start_level=0, add_extra_convs='on_input',
              num_outs=5))
