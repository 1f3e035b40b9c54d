# UperNet 160k on ADE20K with Hyena ViT-Tiny (ImageNet-pretrained, official key layout) and the
# simple feature pyramid. No official segmentation config: AdamW lr 6e-5, weight decay 0.01,
# poly (power 1) after 1500 linear warm-up iterations, batch 16 (8 GPUs x 2), as the toolkit's
# other UperNet 160k configs. The 512x512 crops give a 32x32 token grid: the implicit filters are
# evaluated on it and the position embedding is resized to it.
_base_ = [
    '../_base_/models/upernet_hyena-vit-t.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# No official ImageNet weights of Hyena ViT-Tiny are published (the official README links none):
# pre-train it with the official code and place the file at
# checkpoints/hyena_deit_tiny_in1k.pth, or drop init_cfg to train from scratch.
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained',
                                checkpoint='checkpoints/hyena_deit_tiny_in1k.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
