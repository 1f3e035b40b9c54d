# ConDaFormer-small (official ConDaFormer-small-v1m1) on S3DIS, trained on Areas 1-4 and 6,
# evaluated on Area 5, 13 classes: voxel 0.04 m, window 8, quant 0.25, encoder
# (96, 192, 384) x (2, 6, 2), 3000 epochs, AdamW 0.006, batch 8.
# Data: data/s3dis/Area_<k>/<room>.pth (PointTransformerV2 layout) or room folders of .npy
# (Pointcept layout); see docs/pointcloud.md. Mixed precision as the official training
# (enable_amp: fp16 with loss scaling on a GPU, bf16 autocast on a CPU). Validation during
# training: one point per voxel, every point takes its voxel's prediction (official val mode);
# tools/test.py: the official test protocol (12 rotations x scales, each cut into voxel fragments
# that together score every point; softmax summed), 6 views per forward pass.
_base_ = ['../_base_/pointcloud_runtime.py']
num_classes = 13
voxel_size = 0.04
model = dict(
    type='PointCloudSegmentor',
    backbone=dict(type='ConDaFormer', arch='s3dis', in_channels=6, base_channels=48,
                  head_dim=16, drop_path_rate=0.5),
    head=dict(type='PointSegHead', num_classes=num_classes),
    loss=dict(type='PointCrossEntropyLoss', ignore_index=255),
    data_preprocessor=dict(type='PointCloudDataPreprocessor'),
    test_cfg=dict(views_per_batch=6))

data_root = 'data/s3dis'
dataset_type = 'S3DISPointDataset'
feat_keys = ('coord', 'color')
train_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointRandomRotate', angle=[-1, 1], axis='z', center=[0, 0, 0], p=0.5),
    dict(type='PointRandomScale', scale=[0.8, 1.2]),
    dict(type='PointRandomJitter', sigma=0.005, clip=0.02),
    dict(type='PointRandomColorDrop', p=0.2, color_augment=0.0),
    dict(type='PointGridSample', voxel_size=voxel_size, mode='train'),
    dict(type='PointSphereCrop', point_max=80000, mode='random'),
    dict(type='PointPositiveShift'),
    dict(type='PointNormalizeColor', mode='unit'),
    dict(type='PointShuffle'),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
val_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointNormalizeColor', mode='unit'),
    dict(type='PointTestTimeAug', voxel_size=voxel_size, mode='first',
         post=[dict(type='PointPositiveShift')]),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
# the official aug_transform: z rotations by 0, 1/2, 1, 3/2 pi at scales 1, 0.95, 1.05
test_augments = [
    [dict(type='PointRandomRotate', angle=[a, a], axis='z', center=[0, 0, 0], p=1)] +
    ([] if s == 1 else [dict(type='PointRandomScale', scale=[s, s])])
    for s in (1, 0.95, 1.05) for a in (0, 1 / 2, 1, 3 / 2)
]
test_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointNormalizeColor', mode='unit'),
    dict(type='PointTestTimeAug', voxel_size=voxel_size, augments=test_augments,
         mode='fragments', post=[dict(type='PointPositiveShift')]),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
train_dataloader = dict(
    batch_size=8, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 split=['Area_1', 'Area_2', 'Area_3', 'Area_4', 'Area_6'],
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='Area_5', test_mode=True,
                 pipeline=val_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='Area_5', test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type='PointCloudIoUMetric', num_classes=num_classes, ignore_index=255)
test_evaluator = val_evaluator

max_epochs = 3000
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=0.006, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone.encoder': dict(lr_mult=0.1),
                                    'backbone.decoder': dict(lr_mult=0.1)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1800, 2400], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=50)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=50))
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=3407)
