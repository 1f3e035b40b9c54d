# Group Pose on COCO keypoints with the toolkit's VAN-B0 backbone (ImageNet-pretrained, official
# release) in place of ResNet-50: only the backbone and the neck's input channels change.
_base_ = ['./grouppose_r50_8xb2-60e_coco.py']
# the official ImageNet-1K weights (docs/model-zoo.md): downloaded once into torch's hub cache
pretrained = 'https://huggingface.co/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar'  # noqa: E501
model = dict(
    backbone=dict(_delete_=True, type='VAN', arch='b0', out_indices=(1, 2, 3),
                  drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 160, 256]))
