# CATANet x2 (Liu et al., CVPR 2025) on DIV2K, the official train_CATANet_x2_scratch.yml:
# 4 GPUs x 16, LR patches 64x64, flips + transposes, L1, Adam 2e-4 (0.9, 0.99), 800k iterations,
# lr halved at 300k/500k/650k/700k/750k. The official config uses no weight EMA (only the
# token centres' EMA inside the network); add mmengine's EMAHook in custom_hooks to try it.
_base_ = ['../_base_/datasets/sr_div2k.py', '../_base_/sr_default_runtime.py']
model = dict(
    type='SRModel',
    generator=dict(type='CATANet', upscale=2),
    pixel_loss=dict(type='PixelL1Loss', loss_weight=1.0),
    data_preprocessor=dict(type='SRDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]),
    test_cfg=dict(tile=None))  # e.g. tile=128, tile_overlap=16 for large images on small GPUs
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=2e-4, betas=(0.9, 0.99), weight_decay=0))
param_scheduler = dict(type='MultiStepLR', by_epoch=False,
                       milestones=[300000, 500000, 650000, 700000, 750000], gamma=0.5)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=800000, val_interval=2500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=2500))
randomness = dict(seed=3407)
auto_scale_lr = dict(base_batch_size=64)
