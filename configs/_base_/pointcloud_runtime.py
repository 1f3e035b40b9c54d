# Runtime of the toolkit's point cloud configs (mmengine root scope: no default_scope).
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='pcd/mIoU',
                    rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # tools/test.py --show-dir D sets draw=True and test_out_dir=D: coloured PLY files
    visualization=dict(type='PointCloudVisualizationHook', draw=False, test_out_dir=None))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
