# Mamba-YOLO-T on COCO at 640, trained from scratch with the official recipe (HZAI-ZJNU/Mamba-YOLO
# mbyolo_train.py: SGD, batch 512 = 8 GPUs x 64, 300 epochs, AMP; everything else from its
# ultralytics/cfg/default.yaml): SGD lr 0.01, momentum 0.937, Nesterov, weight decay 5e-4 scaled by
# Ultralytics' nominal batch 64 (5e-4 x 512 / 64 = 4e-3) and none on norms and biases; gradients
# clipped at norm 10; lr decays linearly to 1% over the epochs after a warm-up of 3 epochs (biases
# from lr 0.1, the rest from 0, momentum from 0.8); EMA of the weights (decay 0.9999, ramp 2000
# iterations); Mosaic + random affine (translate 0.1, scale 0.5-1.5) + HSV + horizontal flip, the
# mosaic closed for the last 10 epochs (mixup 0 in the recipe: not used). Paper: 44.5 box AP.
# Differences from Ultralytics, with mmdet's transforms: the HSV jitter is YOLOX's additive one
# (deltas set to Ultralytics' multiplicative gains 0.015 / 0.7 / 0.4 at mid-range values), boxes
# cut by the affine crop are not filtered by their kept area (Ultralytics drops those keeping
# < 10%), letterbox padding is bottom-right, Albumentations' 1% blur / grey / CLAHE are absent.
# Train with `tools/dist_train.sh CONFIG 8 --amp` as the official run.
_base_ = [
    '../_base_/models/mamba-yolo-t_pafpn.py',
    'mmdet::_base_/default_runtime.py',
]
img_scale = (640, 640)
mosaic_canvas = (img_scale[0] * 2, img_scale[1] * 2)
max_epochs = 300
close_mosaic_epochs = 10
batch_size = 64          # per GPU; 8 GPUs
num_gpus = 8
num_workers = 8

dataset_type = 'CocoDataset'
data_root = 'data/coco/'
backend_args = None
affine = dict(type='RandomAffine', max_rotate_degree=0., max_translate_ratio=0.1,
              scaling_ratio_range=(0.5, 1.5), max_shear_degree=0., border_val=(114, 114, 114))
hsv = dict(type='YOLOXHSVRandomAug', hue_delta=2, saturation_delta=90, value_delta=51)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    # Ultralytics' mosaic draws its three partners from a buffer of the last batch x 8 loaded
    # images (FIFO), as CachedMosaic does; its first samples (cache not yet filled) pass alone
    dict(type='CachedMosaic', img_scale=img_scale, pad_val=114.0,
         max_cached_images=batch_size * 8, random_pop=False),
    # the affine crops the 2x mosaic canvas back to img_scale; a sample that passed the mosaic
    # alone is first letterboxed to the canvas size (no-ops for a mosaic), so the crop is valid
    dict(type='Resize', scale=mosaic_canvas, keep_ratio=True),
    dict(type='Pad', size=mosaic_canvas, pad_val=dict(img=(114, 114, 114))),
    dict(affine, border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    hsv,
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(2, 2), keep_empty=False),
    dict(type='PackDetInputs'),
]
# the last close_mosaic_epochs: letterbox to img_scale, then the same affine without the crop
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(affine, border=(0, 0)),
    hsv,
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(2, 2), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
                     metric='bbox', format_only=False, backend_args=backend_args)
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10,
                 dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True,
                   weight_decay=0.0005 * batch_size * num_gpus / 64),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'dt_projs_bias': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=10.0))
param_scheduler = None   # YOLOParamSchedulerHook sets learning rates and momenta
custom_hooks = [
    dict(type='YOLOParamSchedulerHook', lr_factor=0.01, warmup_epochs=3, warmup_min_iters=100,
         warmup_bias_lr=0.1, warmup_momentum=0.8),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - close_mosaic_epochs,
         switch_pipeline=train_pipeline_stage2),
]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
