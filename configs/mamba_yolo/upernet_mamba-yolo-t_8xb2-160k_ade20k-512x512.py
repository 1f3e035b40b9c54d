# UperNet 160k on ADE20K with the Mamba-YOLO-T backbone (from scratch or from a Mamba-YOLO COCO
# detector's backbone: see retinanet_mamba-yolo-t_fpn_1x_coco.py). AdamW lr 6e-5, weight decay
# 0.01 (none on norms), poly after 1500 linear warm-up iterations, batch 16 (8 GPUs x 2), the
# usual UperNet recipe of the toolkit's backbones.
_base_ = [
    '../_base_/models/upernet_mamba-yolo-t.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
