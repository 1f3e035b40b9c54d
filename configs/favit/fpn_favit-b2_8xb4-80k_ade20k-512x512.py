# Semantic FPN on ADE20K with FaViT-B2, as the official fpn_favit_b2_ade20k_160k config (which,
# despite its name, runs 160k // 2 = 80k iterations at twice the lr): AdamW lr 1.2e-4, weight decay
# 0.01, poly (power 0.9, to 0), batch 32 (8 GPUs x 4), 80k iterations.
_base_ = [
    '../_base_/models/fpn_favit-b2.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
# No official ImageNet weights of FaViT-B2 are published (the README's lists are empty):
# pre-train it and place the file at checkpoints/favit_b2.pth, or drop init_cfg to train
# from scratch.
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/favit_b2.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, weight_decay=0.01))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0,
                        end=80000)]
train_dataloader = dict(batch_size=4)
