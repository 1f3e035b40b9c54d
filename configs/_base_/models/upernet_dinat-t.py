# UperNet on a DiNAT-Tiny backbone, auxiliary FCN head on stage 3 (model only), as the official
# segmentation/configs/dinat/upernet_dinat_tiny_512x512_160k_ade20k.py: stochastic depth 0.3 and
# its per-layer dilations ('segmentation' = level by level [1, 16, 1], [1, 4, 1, 8],
# [1, 2, 1, 3, 1, 4] x 3, [1, 2, 1, 2, 1]; see plugins.backbones.nat.dinat_dilations).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='DiNAT',
        arch='tiny',
        dilations='segmentation',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
