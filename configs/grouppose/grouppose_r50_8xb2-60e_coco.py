# Group Pose (ICCV 2023) with ResNet-50 on COCO keypoints, the paper's settings
# (Michel-liu/GroupPose config/grouppose.py): hidden 256, 8 heads, 6 encoder + 6 decoder layers,
# FFN 2048, 4 levels x 4 points, 100 queries (encoder proposals) of which 50 are kept, 17
# keypoints; focal class (2.0), keypoint L1 (10.0), OKS (4.0) losses on every decoder layer and
# on the encoder proposals; matching costs 2 / 10 / 4; AdamW lr 1e-4 (backbone 1e-5), weight
# decay 1e-4, gradient clip 0.1, batch 16 (8 GPUs x 2), 60 epochs, lr x0.1 after epoch 50.
# Paper: 72.0 AP on COCO val2017 (plugins/tasks/pose/reference.yaml).
# As the official code, so its checkpoints (load_from / init_cfg, key converter 'grouppose') give
# its predictions: two class logits, in-place query position embedding, padding tokens in the
# two-stage selection (GroupPoseHead's defaults), input projections with bias; augmentation:
# flip, then resize the short side to 480..800 (long <= 1333), or resize to 400..600, crop
# 384..600 and resize again; test: short side 800, long <= 1333, no padding at batch 1.
_base_ = ['mmpose::_base_/default_runtime.py']
default_scope = 'mmpose'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)

num_keypoints = 17
codec = dict(type='GroupPoseLabel', num_keypoints=num_keypoints, num_select=50)

model = dict(
    type='GroupPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='ResNet', depth=50, num_stages=4, out_indices=(1, 2, 3), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='ChannelMapper', in_channels=[512, 1024, 2048], kernel_size=1, out_channels=256,
        act_cfg=None, norm_cfg=dict(type='GN', num_groups=32), bias=True, num_outs=4),
    head=dict(
        type='GroupPoseHead',
        num_keypoints=num_keypoints,
        num_classes=2,
        num_queries=100,
        num_feature_levels=4,
        embed_dims=256,
        num_heads=8,
        feedforward_channels=2048,
        num_points=4,
        dropout=0.0,
        num_encoder_layers=6,
        num_decoder_layers=6,
        positional_encoding=dict(temperature=20, normalize=True),
        loss_cls=dict(type='GroupPoseFocalLoss', alpha=0.25, gamma=2.0, loss_weight=2.0),
        loss_keypoint=dict(type='VisibleKeypointL1Loss', loss_weight=10.0),
        loss_oks=dict(type='KeypointOKSLoss', mode='linear', loss_weight=4.0),
        matcher=dict(type='GroupPoseMatcher', cost_class=2.0, cost_keypoint=10.0,
                     cost_oks=4.0),
        encoder_loss_weight=1.0,
        codec=codec,
        select_padding=True,
        pos_in_content=True),
    test_cfg=dict(flip_test=False))

# data
dataset_type = 'CocoDataset'
data_mode = 'bottomup'
data_root = 'data/coco/'
scales = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GroupPoseKeepLabelledPeople'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomChoice', transforms=[
        [dict(type='GroupPoseRandomResize', scales=scales, max_size=1333)],
        [dict(type='GroupPoseRandomResize', scales=[400, 500, 600]),
         dict(type='GroupPoseRandomSizeCrop', min_size=384, max_size=600),
         dict(type='GroupPoseRandomResize', scales=scales, max_size=1333)]]),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GroupPoseRandomResize', scales=[800], max_size=1333),
    dict(type='PackPoseInputs', meta_keys=(
        'id', 'img_id', 'img_path', 'crowd_index', 'ori_shape', 'img_shape', 'input_size',
        'input_center', 'input_scale', 'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
        'skeleton_links')),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/person_keypoints_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/person_keypoints_val2017.json',
                 data_prefix=dict(img='val2017/'), test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/person_keypoints_val2017.json',
                     nms_mode='none', score_mode='keypoint')
test_evaluator = val_evaluator

# schedule
max_epochs = 60
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
                        milestones=[50], gamma=0.1)]
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(checkpoint=dict(interval=10, save_best='coco/AP', rule='greater'))
