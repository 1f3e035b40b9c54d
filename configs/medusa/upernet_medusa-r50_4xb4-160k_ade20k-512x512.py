# UperNet 160k on ADE20K with MEDUSA around mmseg's ResNet-50-V1c (open-mmlab weights, identity
# start). Schedule, pipeline and optimiser are mmseg's upernet_r50_4xb4-160k_ade20k-512x512 (SGD
# lr 0.01, poly, batch 16 = 4 GPUs x 4).
_base_ = [
    '../_base_/models/upernet_medusa-r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
