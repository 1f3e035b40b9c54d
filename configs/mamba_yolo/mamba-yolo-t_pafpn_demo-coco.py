# Demo twin of mamba-yolo-t_pafpn_8xb64-300e_coco.py: the same detector and training recipe (SGD
# lr 0.01 with Ultralytics' warm-up and linear decay, EMA, Mosaic + affine + HSV + flip, the mosaic
# closed at the end), from scratch, on the generated COCO-format set (400 images of 192x192, three
# shape classes); `python tools/demo.py yolo` trains and evaluates it. Scaled to a 2-core CPU:
# images at 128 (the mosaic canvas 256), batch 8 on one process without gradient accumulation
# (weight decay 5e-4 x 8 / 64), 6 epochs with a 1-epoch warm-up, the mosaic closed for the last 2.
# Measured (nice 5, shared 2-core machine): bbox mAP 0.7 after 8 epochs, 0.30 after 4; see
# docs/mamba_yolo.md.
_base_ = './mamba-yolo-t_pafpn_8xb64-300e_coco.py'
img_scale = (128, 128)
mosaic_canvas = (img_scale[0] * 2, img_scale[1] * 2)
max_epochs = 6
close_mosaic_epochs = 2
batch_size = 8

data_root = 'data/demo/coco/'
metainfo = dict(classes=('circle', 'rectangle', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0)])
affine = dict(type='RandomAffine', max_rotate_degree=0., max_translate_ratio=0.1,
              scaling_ratio_range=(0.5, 1.5), max_shear_degree=0., border_val=(114, 114, 114))
hsv = dict(type='YOLOXHSVRandomAug', hue_delta=2, saturation_delta=90, value_delta=51)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=img_scale, pad_val=114.0,
         max_cached_images=batch_size * 8, random_pop=False),
    dict(type='Resize', scale=mosaic_canvas, keep_ratio=True),
    dict(type='Pad', size=mosaic_canvas, pad_val=dict(img=(114, 114, 114))),
    dict(affine, border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    hsv,
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(2, 2), keep_empty=False),
    dict(type='PackDetInputs'),
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile'),
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
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
model = dict(bbox_head=dict(num_classes=3, prior_image_size=img_scale[0]))
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs,
                 dynamic_intervals=None)
optim_wrapper = dict(optimizer=dict(weight_decay=0.0005 * batch_size / 64))
custom_hooks = [
    dict(type='YOLOParamSchedulerHook', lr_factor=0.01, warmup_epochs=1, warmup_min_iters=50,
         warmup_bias_lr=0.1, warmup_momentum=0.8),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - close_mosaic_epochs,
         switch_pipeline=train_pipeline_stage2),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs), logger=dict(interval=5))
