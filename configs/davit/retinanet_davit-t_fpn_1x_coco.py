# RetinaNet 1x on COCO with DaViT-T (ImageNet-pretrained), as the official davit_retinanet_1x
# config: AdamW lr 1e-4, weight decay 0.05, batch 16, 12 epochs. The official config trains with
# the DETR-style multi-scale AutoAugment pipeline; this one keeps mmdet's standard pipeline.
# Official result: 44.0 box AP.
_base_ = [
    '../_base_/models/retinanet_davit-t_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
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
