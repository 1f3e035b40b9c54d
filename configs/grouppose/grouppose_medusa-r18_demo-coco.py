# Demo twin of grouppose_medusa-r50_8xb2-60e_coco.py, as grouppose_r18_demo-coco.py is of the
# plain model: the same Group Pose head on ResNet-18 from scratch, here inside MEDUSA, trained on
# the generated stick-figure set (tools/make_demo_data.py --tasks pose, 128 x 128 images).
_base_ = ['./grouppose_r18_demo-coco.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='MEDUSA',
        identity_init=True,
        backbone=dict(
            type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3), frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
            init_cfg=None)))
