# Semantic FPN 80k on ADE20K with BiFormer-S, as the official sfpn.biformer_small config: AdamW
# lr 2e-4, weight decay 1e-4, cosine after 1000 linear warm-up iterations (from 0.1), batch 32
# (8 GPUs x 4), 80k iterations. Paper: 48.9 mIoU.
_base_ = [
    '../_base_/models/fpn_biformer-s.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvChHDyM-x9KWRBZ832/root/content'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', T_max=79000, eta_min_ratio=1e-8, by_epoch=False, begin=1000,
         end=80000),
]
train_dataloader = dict(batch_size=4)
