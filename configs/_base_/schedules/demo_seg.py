# Demo schedule for segmentors trained from scratch on the generated ADE20K-layout set (2-core
# CPU): AdamW, linear warm-up then poly decay, evaluation at the end only.
max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False, begin=50, end=max_iters),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
