# Sequence parallelism in a demo: Semantic FPN on a tiny SG-Former whose two last stages attend
# globally (sr = 1) and, with sequence_parallel=True, shard their tokens over the processes of
# `bash tools/dist_train.sh CONFIG NUM_PROCS` (ring attention; one process: no change). The
# processes share each image, so the training sampler gives all of them the same batch
# (ReplicatedInfiniteSampler); validation keeps the default sampler (each process its own
# images, attended unsharded). Trains from scratch on the generated ADE20K-layout set at 100x90
# (global stages: 6x7 and 3x4 tokens); with two processes it gives the losses of the unsharded
# model (tests/tools/test_multinode.py). No real-dataset twin: it shows the option, which any
# SG-Former or GlobalSelfAttention takes.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    '../_base_/datasets/demo_ade20k.py',
    '../_base_/schedules/demo_seg.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(90, 100)),
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch=dict(embed_dims=[16, 32, 64, 64], depths=[2, 2, 1, 1], num_heads=[2, 2, 4, 4],
                  mlp_ratios=[2, 2, 2, 2], sr_ratios=[8, 4, 1, 1], pos_embed_size=56),
        out_indices=(0, 1, 2, 3),
        sequence_parallel=True),
    neck=dict(in_channels=[16, 32, 64, 64], out_channels=32),
    decode_head=dict(in_channels=[32, 32, 32, 32], channels=32, num_classes=6,
                     norm_cfg=norm_cfg))
resize = dict(type='Resize', scale=(100, 90), keep_ratio=False)  # (w, h)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    resize,
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    resize,
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, sampler=dict(type='ReplicatedInfiniteSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
randomness = dict(seed=0)
