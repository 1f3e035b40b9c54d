# UperNet 160k on ADE20K with HaloNet-50ts (ImageNet-pretrained: timm's halonet50ts.a1h_in1k),
# with mmseg's ResNet-50 UperNet recipe (no official HaloNet segmentation configs): SGD lr 0.01,
# momentum 0.9, weight decay 5e-4, poly (power 0.9), batch 16 (8 GPUs x 2), 160k iterations.
_base_ = [
    '../_base_/models/upernet_halonet50ts.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-attn-weights/halonet50ts_a1h2_256-f3a3daee.pth'  # noqa: E501
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(
        type='Pretrained', checkpoint=pretrained)))
train_dataloader = dict(batch_size=2)
