# UperNet 160k on ADE20K with MixerFormer-S12, neighborhood attention (NAT, arXiv 2204.07143) as the
# mixer in every stage (7x7 neighbourhoods). Every parameter but the mixers' starts from
# PoolFormer-S12's ImageNet release (the loading report lists the mixers' as missing). Schedule as
# the UperNet 160k configs of NAT / Swin: AdamW lr 6e-5, weight decay 0.01 (none on rpb and norms),
# poly (power 1) after 1500 linear warm-up iterations, batch 16 (8 GPUs x 2).
_base_ = [
    '../_base_/models/upernet_mixerformer-s12.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s12.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        mixers=dict(type='NeighborhoodAttention2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'rpb': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
