# Mask R-CNN 1x on COCO with a VAN-B0 backbone (ImageNet-pretrained, the official release).
# Optimiser as the VAN paper (Sec. 4.3, following PVT): AdamW, lr 1e-4, weight decay 1e-4,
# batch 16 (8 GPUs x 2), 12 epochs.
_base_ = [
    '../_base_/models/mask-rcnn_van-b0_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://huggingface.co/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar'  # noqa: E501
model = dict(backbone=dict(
    init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
