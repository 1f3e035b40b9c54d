# UperNet 160k on ADE20K with SG-Former-S (ImageNet-pretrained). The release has no segmentation
# config; the recipe is the one the toolkit's transformer backbones share (Swin's): AdamW lr 6e-5,
# weight decay 0.01 (none on norms and the position embedding), poly (power 1) after 1500 linear
# warm-up iterations, batch 16 (8 GPUs x 2), 160k iterations.
_base_ = [
    '../_base_/models/upernet_sgformer-s.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# The official ImageNet-1K weights of SG-Former-S are on a web page that cannot be downloaded
# for you: get them by hand from the Google Drive folder
# https://drive.google.com/drive/folders/1ZJDEwxDffqqqzBC2SzhOkpWpGRweDsE4?usp=sharing
# and place the file at checkpoints/sgformer_s.pth (docs/model-zoo.md).
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sgformer_s.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.),
                                    'pos_embed': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
