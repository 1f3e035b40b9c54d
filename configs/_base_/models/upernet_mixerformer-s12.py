# UperNet on a MixerFormer-S12 backbone, auxiliary FCN head on stage 3 (model only). The mixer is
# PoolFormer's pooling here; each config sets its own with model.backbone.mixers. The hook adds
# the auxiliary losses of mixers that have one to the training loss. Stochastic depth 0.1, as
# PoolFormer-S12 on ImageNet (PoolFormer has no UperNet config).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MixerFormer',
        arch='s12',
        mixers=dict(type='PoolingMixer'),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))
custom_hooks = [dict(type='AuxiliaryLossHook')]
