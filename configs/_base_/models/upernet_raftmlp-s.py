# UperNet on a RaftMLP-S backbone, auxiliary FCN head on level 3 (model only). The official code
# trains Semantic FPN 40k only; backbone as its SegRaftMLPSmall.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='RaftMLP',
        arch='s',
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
