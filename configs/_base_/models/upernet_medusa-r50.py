# UperNet on mmseg's ResNet-50-V1c (as mmseg's upernet_r50) inside MEDUSA, auxiliary FCN head on
# stage 3 (model only); identity start. The ResNet's weights go to the wrapped backbone's init_cfg
# (`model.pretrained` would address the wrapper, whose keys carry a `backbone.` prefix).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MEDUSA',
        identity_init=True,
        backbone=dict(
            type='ResNetV1c',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 1, 1),
            strides=(1, 2, 2, 2),
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            contract_dilation=True,
            init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c'))))
