# UperNet 160k on ADE20K with RaftMLP-S (ImageNet-pretrained). The official code trains Semantic
# FPN 40k (AdamW lr 2e-4, weight decay 1e-4, poly power 0.9 to 0); this keeps that optimiser and
# schedule over 160k iterations, batch 16 (8 GPUs x 2). The 512x512 crops give
# 128 / 64 / 32 / 16 maps, which every block resizes to the 56 / 28 / 14 / 7 pre-training grids
# for its token mixing (the official behaviour; token_grid='window' mixes at the maps' size).
_base_ = [
    '../_base_/models/upernet_raftmlp-s.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# No official ImageNet weights of RaftMLP-S are published (the official README links none):
# pre-train it with the official code and place the file at checkpoints/raftmlp_s_in1k.pt, or drop
# init_cfg to train from scratch.
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/raftmlp_s_in1k.pt')))
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=160000)]
