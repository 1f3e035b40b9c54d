# UperNet 160k on ADE20K with DaViT-T (ImageNet-pretrained), as the official
# upernet_davit_512x512_160k_ade20k config: AdamW lr 6e-5, weight decay 0.01, poly (power 1) after
# 1500 linear warm-up iterations, batch 16 (8 GPUs x 2). Official result: 46.3 mIoU.
_base_ = [
    '../_base_/models/upernet_davit-t.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# The official ImageNet-1K weights of DaViT-T are on a web page that cannot be downloaded
# for you: get them by hand from the OneDrive (SharePoint) page
# https://connecthkuhk-my.sharepoint.com/:u:/g/personal/u3007305_connect_hku_hk/EcJYlVYP9y5FsDbMP-nwjtABgLmdrNGZBxgR5--Kg3MZ7Q?e=v9OrXB  # noqa: E501
# and place the file at checkpoints/davit_tiny_in1k.pth (docs/model-zoo.md).
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/davit_tiny_in1k.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
