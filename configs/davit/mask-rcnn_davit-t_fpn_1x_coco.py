# Mask R-CNN 1x on COCO with DaViT-T (ImageNet-pretrained: the official release or timm's
# davit_tiny.msft_in1k, both read by the davit converter), as the official davit_maskrcnn_1x config:
# AdamW lr 1e-4, weight decay 0.05, batch 16, 12 epochs (steps at 8 and 11). The official config
# trains with the DETR-style multi-scale AutoAugment pipeline; this one keeps mmdet's standard
# 1333x800 pipeline. Official result: 45.0 box AP / 41.1 mask AP.
_base_ = [
    '../_base_/models/mask-rcnn_davit-t_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# The official ImageNet-1K weights of DaViT-T are on a web page that cannot be downloaded
# for you: get them by hand from the OneDrive (SharePoint) page
# https://connecthkuhk-my.sharepoint.com/:u:/g/personal/u3007305_connect_hku_hk/EcJYlVYP9y5FsDbMP-nwjtABgLmdrNGZBxgR5--Kg3MZ7Q?e=v9OrXB  # noqa: E501
# and place the file at checkpoints/davit_tiny_in1k.pth (docs/model-zoo.md).
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='checkpoints/davit_tiny_in1k.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
