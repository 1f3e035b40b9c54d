# UperNet 160k on ADE20K with PyramidTNT-S (ImageNet-pretrained, as
# mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py): AdamW lr 6e-5, weight decay 0.01 (none on the position
# embeddings, query-key biases and norms), poly (power 1) after 1500 linear warm-up iterations,
# batch 16 (8 GPUs x 2), the recipe of the toolkit's other UperNet configs.
_base_ = [
    '../_base_/models/upernet_pyramid-tnt-s.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# The official ImageNet-1K weights of PyramidTNT-S are on a web page that cannot be downloaded
# for you: get them by hand from the Baidu Disk page
# https://pan.baidu.com/s/1xha8x3DTlPq9-KeC6EPPow (password v5w5) and place the file at
# checkpoints/ptnt_s_82.0.pth.tar (docs/model-zoo.md).
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/ptnt_s_82.0.pth.tar')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'outer_pos': dict(decay_mult=0.),
        'inner_pos': dict(decay_mult=0.),
        'relative_pos': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
