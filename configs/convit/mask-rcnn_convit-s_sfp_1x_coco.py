# Mask R-CNN 1x on COCO with ConViT-S (ImageNet-pretrained: the official release convit_small.pth
# (facebookresearch/convit) or timm's convit_small.fb_in1k saved with torch.save, both read by the
# convit converter). ConViT has no official detection / segmentation setting: AdamW lr 1e-4,
# weight decay 0.05 (none on the position embeddings, class token and norms), batch 16, 12 epochs
# (steps at 8 and 11), mmdet's standard 1333x800 pipeline, as the toolkit's other transformer
# backbones.
_base_ = [
    '../_base_/models/mask-rcnn_convit-s_sfp.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://dl.fbaipublicfiles.com/convit/convit_small.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
