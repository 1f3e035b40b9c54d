# Mask R-CNN 1x on COCO with SG-Former-S (ImageNet-pretrained, the official release converted by the
# sgformer converter). The release has no detection config; the recipe is the one the toolkit's
# transformer backbones share (Swin's / CSWin's, which the paper compares with): AdamW lr 1e-4,
# weight decay 0.05 (none on norms and the position embedding), batch 16 (8 GPUs x 2), 12 epochs
# (steps at 8 and 11).
_base_ = [
    '../_base_/models/mask-rcnn_sgformer-s_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# The official ImageNet-1K weights of SG-Former-S are on a web page that cannot be downloaded
# for you: get them by hand from the Google Drive folder
# https://drive.google.com/drive/folders/1ZJDEwxDffqqqzBC2SzhOkpWpGRweDsE4?usp=sharing
# and place the file at checkpoints/sgformer_s.pth (docs/model-zoo.md).
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sgformer_s.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.),
                                    'pos_embed': dict(decay_mult=0.)}))
