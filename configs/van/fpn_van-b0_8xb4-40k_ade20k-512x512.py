# Semantic FPN 40k on ADE20K with VAN-B0, as VAN-Segmentation's fpn_van_b0 config: AdamW lr 2e-4,
# weight decay 1e-4, poly (power 0.9), batch 32 (8 GPUs x 4), 40k iterations. Paper: 38.5 mIoU.
_base_ = [
    '../_base_/models/fpn_van-b0.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://huggingface.co/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar'  # noqa: E501
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0,
                        end=40000)]
train_dataloader = dict(batch_size=4)
