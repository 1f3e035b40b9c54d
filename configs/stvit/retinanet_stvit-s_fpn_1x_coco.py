# RetinaNet 1x on COCO with STViT-S (the official ImageNet release, read by the stvit converter).
# The STViT release has no detection code; the optimiser is the common Swin-style 1x recipe: AdamW,
# lr 1e-4, weight decay 0.05, batch 16 (8 GPUs x 2), 12 epochs (steps at 8 and 11), mmdet's
# standard 1333x800 pipeline. The backbone's BatchNorms train with the detector (norm_cfg=SyncBN
# for multi-GPU runs).
_base_ = [
    '../_base_/models/retinanet_stvit-s_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# The official ImageNet-1K weights of STViT-S are on a web page that cannot be downloaded for
# you: get stvit-small-224.pth by hand from the Google Drive folder
# https://drive.google.com/drive/folders/1uaT5OarQd9iPrnFufHocHpM3zhyTcetB?usp=sharing
# and place the file at checkpoints/stvit-small-224.pth (docs/model-zoo.md).
model = dict(backbone=dict(init_cfg=dict(type='Pretrained',
                                         checkpoint='checkpoints/stvit-small-224.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
