# Demo twin of grouppose_r50_8xb2-60e_coco.py: the same Group Pose head, trained from scratch on
# the generated stick-figure set (tools/make_demo_data.py --tasks pose, 128 x 128 images) on a
# CPU in under 30 minutes. Smaller than the paper only here: ResNet-18 from scratch, width 128,
# 4 heads, 2 encoder + 3 decoder layers, 20 queries (10 kept); losses, matching and the
# decoder's group attention are the paper's. Metric: coco/AP (xtcocotools OKS AP).
_base_ = ['./grouppose_r50_8xb2-60e_coco.py']
embed_dims = 128
codec = dict(type='GroupPoseLabel', num_keypoints=17, num_select=10)
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[128, 256, 512], out_channels=embed_dims),
    head=dict(num_queries=20, embed_dims=embed_dims, num_heads=4, feedforward_channels=256,
              num_encoder_layers=2, num_decoder_layers=3, codec=codec))

data_root = 'data/demo/pose/'
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='BottomupRandomAffine', input_size=(128, 128), shift_factor=0.05,
         scale_factor=(0.85, 1.15), scale_type='long', rotate_factor=0., shear_factor=0.,
         clip_border=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=(128, 128), size_factor=32, resize_mode='expand'),
    dict(type='PackPoseInputs', meta_keys=(
        'id', 'img_id', 'img_path', 'crowd_index', 'ori_shape', 'img_shape', 'input_size',
        'input_center', 'input_scale', 'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
        'skeleton_links')),
]
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=1, persistent_workers=True,
                      dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(_delete_=True, custom_keys={}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8], gamma=0.1)]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
