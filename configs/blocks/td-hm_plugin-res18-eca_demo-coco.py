# Demo twin of td-hm_plugin-res18-eca_8xb64-210e_coco-256x192.py: the same model, from scratch, on
# the generated COCO-keypoints set (tools/make_demo_data.py --tasks pose), person boxes from the
# annotations instead of a detector's.
_base_ = ['./td-hm_plugin-res18-eca_8xb64-210e_coco-256x192.py']
data_root = 'data/demo/pose/'
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_epochs=10, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.01, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_train2017.json',
                 data_prefix=dict(img='train2017/')))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_val2017.json',
                 bbox_file=None, data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(interval=10, save_best=None), logger=dict(interval=10))
