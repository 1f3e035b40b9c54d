# Demo twin of fpn_favit-b2_8xb4-80k_ade20k-512x512.py: the same backbone and Semantic FPN (BN
# instead of SyncBN; FPN and head slimmed to 128/64 channels for the CPU budget), from scratch, on
# the generated ADE20K-layout set.
_base_ = [
    '../_base_/models/fpn_favit-b2.py',
    '../_base_/datasets/demo_ade20k.py',
    '../_base_/schedules/demo_seg.py',
    'mmseg::_base_/default_runtime.py',
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    neck=dict(out_channels=128),
    decode_head=dict(in_channels=[128, 128, 128, 128], channels=64, num_classes=6,
                     norm_cfg=norm_cfg))
