# RetinaNet with FPN on a FaViT-B2 backbone (model only), as the official
# retinanet_favit_b2_fpn_1x_coco config: stochastic depth 0.1, FPN from stage 2 with extra convs
# on the input.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='FaViT',
        arch='b2',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256, 512], start_level=1, add_extra_convs='on_input',
              num_outs=5))
