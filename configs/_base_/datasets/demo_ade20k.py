# The generated ADE20K-layout demo set (tools/make_demo_data.py --tasks ade20k): 128x128 outdoor
# scenes with six real ADE20K classes, stored with ADE20K's label ids, read by mmseg's
# ADE20KDataset (reduce_zero_label) and scored by IoUMetric as ADE20K is. The subset of classes is
# selected through metainfo, which maps ADE20K ids to 0..5.
dataset_type = 'ADE20KDataset'
data_root = 'data/demo/ade20k'
metainfo = dict(classes=('building', 'sky', 'tree', 'road', 'grass', 'water'),
                palette=[[180, 120, 120], [6, 230, 230], [4, 200, 3], [140, 140, 140],
                         [4, 250, 7], [61, 230, 250]])
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
