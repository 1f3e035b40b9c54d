# UperNet 160k on ADE20K with ConViT-S (ImageNet-pretrained, as
# mask-rcnn_convit-s_sfp_1x_coco.py): AdamW lr 6e-5, weight decay 0.01 (none on the position
# embeddings, class token and norms), poly (power 1) after 1500 linear warm-up iterations, batch
# 16 (8 GPUs x 2), the recipe of the toolkit's other UperNet configs.
_base_ = [
    '../_base_/models/upernet_convit-s_sfp.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://dl.fbaipublicfiles.com/convit/convit_small.pth'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
