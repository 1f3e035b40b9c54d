# The SR demo set (python tools/make_demo_data.py --out data/demo --tasks sr): crops of
# scikit-image's pictures for training, its photographs (astronaut, chelsea, coffee, rocket)
# as the test set, LR by MATLAB-style bicubic x2.
data_root = 'data/demo/sr'
train_pipeline = [
    dict(type='LoadSRPair'),
    dict(type='SRPairedRandomCrop', lq_patch_size=16),
    dict(type='SRRandomFlip', hflip_prob=0.5, vflip_prob=0.5),
    dict(type='SRRandomTranspose', prob=0.5),
    dict(type='PackSRInputs'),
]
test_pipeline = [
    dict(type='LoadSRPair'),
    dict(type='SRBicubicDegradation'),
    dict(type='PackSRInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SRFolderDataset', scale=2, data_root=data_root + '/train',
                 gt_folder='HR', lq_folder='LR_bicubic/X{scale}', dataset_name='demo-train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SRBenchmarkDataset', scale=2, data_root=data_root + '/test',
                 dataset_name='skimage-photos', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='SRPSNR', crop_border=None, with_bicubic=True),
                 dict(type='SRSSIM', crop_border=None, with_bicubic=True)]
test_evaluator = val_evaluator
