# Demo twin of catanet_x2_4xb16-800k_div2k.py: the same CATANet x2 trained on the scikit-image
# demo set on a CPU in about 15 minutes (+0.9 dB over bicubic measured, docs/sr.md);
# reports sr/PSNR and sr/PSNR_bicubic (the baseline). Run with OMP_NUM_THREADS=1 on a busy machine.
_base_ = ['../_base_/datasets/sr_demo.py', '../_base_/sr_default_runtime.py']
model = dict(
    type='SRModel',
    generator=dict(type='CATANet', upscale=2),
    pixel_loss=dict(type='PixelL1Loss', loss_weight=1.0),
    data_preprocessor=dict(type='SRDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=2e-3, betas=(0.9, 0.99), weight_decay=0),
                     clip_grad=dict(max_norm=1.0))
max_iters = 150
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters - 20, begin=20,
         end=max_iters, eta_min=2e-5)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
