# ConDaFormer (official ConDaFormer-v1m1) on ScanNet v2, 20 classes: voxel 0.02 m, window 10,
# quant 0.25, encoder (96, 192, 384, 384) x (2, 2, 6, 2), 900 epochs, AdamW 0.006, batch 12.
# Data: data/scannet/{train,val}/scene*.pth (PointTransformerV2 layout) or scene folders of .npy
# (Pointcept layout); see docs/pointcloud.md. Mixed precision as the official training
# (enable_amp: fp16 with loss scaling on a GPU, bf16 autocast on a CPU). Validation during
# training: one point per voxel, every point takes its voxel's prediction (official val mode);
# tools/test.py: the official test protocol (12 rotations x scales plus the mirror, each cut into
# voxel fragments that together score every point; softmax summed), 4 views per forward pass.
_base_ = ['../_base_/pointcloud_runtime.py']
num_classes = 20
voxel_size = 0.02
model = dict(
    type='PointCloudSegmentor',
    backbone=dict(type='ConDaFormer', arch='scannet', in_channels=9, base_channels=48,
                  head_dim=16, drop_path_rate=0.3),
    head=dict(type='PointSegHead', num_classes=num_classes),
    loss=dict(type='PointCrossEntropyLoss', ignore_index=255),
    data_preprocessor=dict(type='PointCloudDataPreprocessor'),
    test_cfg=dict(views_per_batch=4))

data_root = 'data/scannet'
dataset_type = 'ScanNetPointDataset'
feat_keys = ('coord', 'normal', 'color')
train_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointRandomDropout', dropout_ratio=0.2, dropout_application_ratio=0.2),
    dict(type='PointRandomRotate', angle=[-1, 1], axis='z', center=[0, 0, 0], p=0.5),
    dict(type='PointRandomRotate', angle=[-1 / 64, 1 / 64], axis='x', p=0.5),
    dict(type='PointRandomRotate', angle=[-1 / 64, 1 / 64], axis='y', p=0.5),
    dict(type='PointRandomScale', scale=[0.9, 1.1]),
    dict(type='PointRandomFlip', p=0.5),
    dict(type='PointRandomJitter', sigma=0.005, clip=0.02),
    dict(type='PointElasticDistortion', distortion_params=[[0.2, 0.4], [0.8, 1.6]]),
    dict(type='PointChromaticAutoContrast', p=0.2, blend_factor=None),
    dict(type='PointChromaticTranslation', p=0.95, ratio=0.05),
    dict(type='PointChromaticJitter', p=0.95, std=0.05),
    dict(type='PointGridSample', voxel_size=voxel_size, mode='train'),
    dict(type='PointSphereCrop', point_max=100000, mode='random'),
    dict(type='PointCenterShift', apply_z=False),
    dict(type='PointNormalizeColor', mode='symmetric'),
    dict(type='PointRandomColorDrop', p=0.2, color_augment=0.0),
    dict(type='PointShuffle'),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
val_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointNormalizeColor', mode='symmetric'),
    dict(type='PointTestTimeAug', voxel_size=voxel_size, mode='first',
         post=[dict(type='PointCenterShift', apply_z=False)]),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
# the official aug_transform: z rotations by 0, 1/2, 1, 3/2 pi at scales 1, 0.95, 1.05; mirror
test_augments = [
    [dict(type='PointRandomRotate', angle=[a, a], axis='z', center=[0, 0, 0], p=1)] +
    ([] if s == 1 else [dict(type='PointRandomScale', scale=[s, s])])
    for s in (1, 0.95, 1.05) for a in (0, 1 / 2, 1, 3 / 2)
] + [[dict(type='PointRandomFlip', p=1)]]
test_pipeline = [
    dict(type='LoadPointCloudFromFile'),
    dict(type='PointCenterShift', apply_z=True),
    dict(type='PointNormalizeColor', mode='symmetric'),
    dict(type='PointTestTimeAug', voxel_size=voxel_size, augments=test_augments,
         mode='fragments', post=[dict(type='PointCenterShift', apply_z=False)]),
    dict(type='PackPointCloudInputs', feat_keys=feat_keys),
]
train_dataloader = dict(
    batch_size=12, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', test_mode=True,
                 pipeline=val_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type='PointCloudIoUMetric', num_classes=num_classes, ignore_index=255)
test_evaluator = val_evaluator

max_epochs = 900
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=0.006, weight_decay=0.02),
    # the official param_dicts: attention blocks at 0.1x the learning rate
    paramwise_cfg=dict(custom_keys={'backbone.encoder': dict(lr_mult=0.1),
                                    'backbone.decoder': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=18,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[540, 720], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=10))
auto_scale_lr = dict(enable=False, base_batch_size=12)
randomness = dict(seed=3407)
