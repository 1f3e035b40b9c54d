# Semantic FPN on a FaViT-B2 backbone (model only), as the official fpn_favit_b2_ade20k_160k
# config: stochastic depth 0.1, FPN of 256 channels, FPN head of 128.
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='FaViT',
        arch='b2',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150))
