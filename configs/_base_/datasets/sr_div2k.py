# DIV2K training (HR + bicubic LR files), evaluation on Set5 / Set14 / Urban100 (x2).
# data/DIV2K/DIV2K_train_HR/0001.png, data/DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png
# data/benchmarks/{Set5,Set14,B100,Urban100,Manga109}/HR/*.png (+ LR_bicubic/X2/*x2.png, or LR
# made on the fly by MATLAB-style bicubic when that folder is missing)
scale = 2
train_pipeline = [
    dict(type='LoadSRPair'),
    dict(type='SRPairedRandomCrop', lq_patch_size=64),
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
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='DIV2KDataset', scale=scale, data_root='data/DIV2K', split='train',
                 repeat=100, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SRBenchmarkDataset', scale=scale, data_root='data/benchmarks',
                 sets=['Set5', 'Set14'], pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    # add 'B100', 'Manga109' for the full table of the papers
    dataset=dict(type='SRBenchmarkDataset', scale=scale, data_root='data/benchmarks',
                 sets=['Set5', 'Set14', 'Urban100'], pipeline=test_pipeline))
val_evaluator = [dict(type='SRPSNR', crop_border=None), dict(type='SRSSIM', crop_border=None)]
test_evaluator = val_evaluator
