# DLGSANet-Tiny x2 (Li et al., ICCV 2023) on DIV2K, the official
# train_SISR_ClassicDIV2K_Tiny_48C3G3B_DLGSANet_SRx2 config: batch 16 (README), LR patches
# 48x48, flips + rotations, L1, Adam 5e-4 (0.9, 0.99), 500k iterations, lr halved at
# 250k/400k/450k/475k, EMA of the weights with decay 0.999, TLC windows of 96 at test time.
_base_ = ['../_base_/datasets/sr_div2k.py', '../_base_/sr_default_runtime.py']
model = dict(
    type='SRModel',
    generator=dict(type='DLGSANet', arch='tiny', upscale=2),  # tlc_kernel 96/72/48 by scale
    pixel_loss=dict(type='PixelL1Loss', loss_weight=1.0),
    data_preprocessor=dict(type='SRDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
train_dataloader = dict(batch_size=8, dataset=dict(
    repeat=1, pipeline=[
        dict(type='LoadSRPair'),
        dict(type='SRPairedRandomCrop', lq_patch_size=48),
        dict(type='SRRandomFlip', hflip_prob=0.5, vflip_prob=0.5),
        dict(type='SRRandomTranspose', prob=0.5),
        dict(type='PackSRInputs')]))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.99), weight_decay=0))
param_scheduler = dict(type='MultiStepLR', by_epoch=False,
                       milestones=[250000, 400000, 450000, 475000], gamma=0.5)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=500000, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# decay 0.999 = mmengine momentum 0.001 (ema = (1 - momentum) * ema + momentum * model)
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001,
                     update_buffers=True, priority=49)]
default_hooks = dict(checkpoint=dict(interval=10000))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=16)
