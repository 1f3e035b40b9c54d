# Top-down heatmap pose estimation (SimpleBaseline) on COCO keypoints with a ResNet-18 whose
# BasicBlocks carry ECA: mmpose's ResNet has no plugins and mmdet's BasicBlock refuses them, so the
# toolkit's PluginResNet serves (same weights layout: torchvision checkpoints load as they are).
_base_ = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='PluginResNet',
        depth=18,
        out_indices=(3, ),
        plugins=[dict(cfg=dict(type='ECABlock', identity_init=True),
                      stages=(True, True, True, True), position='after_conv2')],
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    head=dict(in_channels=512))
