# Demo twin of condaformer-small_s3dis-area5-semseg.py: the same model family (a small preset:
# voxel 0.1 m, window 4, encoder (24, 48, 96) x (1, 1, 1), head_dim 8) trained from scratch on the
# generated rooms of `python tools/make_demo_data.py --tasks pointcloud` (S3DIS layout, Areas 1-4
# for training, Area 5 for validation, 5 classes) on a CPU in minutes; reports pcd/mIoU. Lighter
# than the paper configs: fp32, and testing in the official validation mode (one view, one point
# per voxel, every point takes its voxel's prediction) instead of 12 augmented views x fragments.
_base_ = ['./condaformer-small_s3dis-area5-semseg.py']
num_classes = 5
voxel_size = 0.1
metainfo = dict(classes=('floor', 'wall', 'box', 'cylinder', 'clutter'),
                palette=[(150, 110, 70), (200, 200, 200), (220, 60, 60), (60, 90, 220),
                         (90, 200, 90)])
model = dict(
    backbone=dict(arch='demo', base_channels=24, head_dim=8, drop_path_rate=0.0),
    head=dict(num_classes=num_classes))
data_root = 'data/demo/pointcloud'
train_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointRandomRotate', angle=[-1, 1], axis='z', center=[0, 0, 0], p=0.5),
    dict(type='PointRandomScale', scale=[0.9, 1.1]),
    dict(type='PointRandomFlip', p=0.5),
    dict(type='PointRandomJitter', sigma=0.005, clip=0.02),
    dict(type='PointGridSample', voxel_size=voxel_size, mode='train'),
    dict(type='PointSphereCrop', point_max=12000, mode='random'),
    dict(type='PointPositiveShift'),
    dict(type='PointNormalizeColor', mode='unit'),
    dict(type='PointShuffle'),
    dict(type='PackPointCloudInputs', feat_keys=('coord', 'color')),
]
# the rooms' floor lies at z = 0, on a voxel boundary: centre the room (floor at the grid's
# lowest layer) before voxelising, as the training pipeline does, or the floor's voxels straddle
# two layers at test time only and read as something standing on the floor
test_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointNormalizeColor', mode='unit'),
    dict(type='PointTestTimeAug', voxel_size=voxel_size, mode='first',
         post=[dict(type='PointPositiveShift')]),
    dict(type='PackPointCloudInputs', feat_keys=('coord', 'color')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, split=['Area_1', 'Area_2', 'Area_3', 'Area_4'],
                 metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, split='Area_5', metainfo=metainfo,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=num_classes)
test_evaluator = val_evaluator

max_iters = 400
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=0.004, weight_decay=0.01),
                     clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters - 30, begin=30,
         end=max_iters, eta_min=4e-5)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
