# Group Pose on COCO keypoints with MEDUSA around mmpose's ResNet-50 (torchvision weights, stage 1
# frozen, BN frozen; identity start). Everything else is grouppose_r50_8xb2-60e_coco.py; the
# wrapped ResNet keeps its 0.1 learning rate, the new body and heads train at the full rate.
_base_ = ['./grouppose_r50_8xb2-60e_coco.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='MEDUSA',
        identity_init=True,
        backbone=dict(
            type='ResNet', depth=50, num_stages=4, out_indices=(1, 2, 3), frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch',
            init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'backbone': dict(lr_mult=0.1),  # the longest matching key wins: body and heads at 1.0
    'backbone.body': dict(lr_mult=1.0),
    'backbone.heads': dict(lr_mult=1.0)}))
