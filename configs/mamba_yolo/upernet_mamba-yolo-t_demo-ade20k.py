# Demo twin of upernet_mamba-yolo-t_8xb2-160k_ade20k-512x512.py: the same model (BN instead of
# SyncBN), from scratch, on the generated ADE20K-layout set.
_base_ = [
    '../_base_/models/upernet_mamba-yolo-t.py',
    '../_base_/datasets/demo_ade20k.py',
    '../_base_/schedules/demo_seg.py',
    'mmseg::_base_/default_runtime.py',
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    decode_head=dict(num_classes=6, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=6, norm_cfg=norm_cfg))
