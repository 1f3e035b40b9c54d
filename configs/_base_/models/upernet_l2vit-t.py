# UperNet on an L2ViT-T backbone, auxiliary FCN head on stage 3 (model only), as the official
# upernet_l2vit_tiny config: stochastic depth 0.3.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
