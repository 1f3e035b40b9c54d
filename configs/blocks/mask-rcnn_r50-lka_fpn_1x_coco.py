# Mask R-CNN 1x on COCO, ResNet-50 with LKA in every Bottleneck (after_conv2).
# identity_init=True: the block starts as the identity, so the ImageNet-pretrained ResNet-50 is
# not perturbed when fine-tuning begins (set False for the paper's block from the first step).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(backbone=dict(plugins=[
    dict(cfg=dict(type='LargeKernelAttention', identity_init=True),
         stages=(True, True, True, True),
         position='after_conv2')
]))
