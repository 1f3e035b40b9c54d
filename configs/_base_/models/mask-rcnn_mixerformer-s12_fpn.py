# Mask R-CNN with FPN on a MixerFormer-S12 backbone (model only). The mixer is PoolFormer's pooling
# here (so this is PoolFormer-S12's official poolformer_s12_feat); each config sets its own with
# model.backbone.mixers. The hook adds the auxiliary losses of mixers that have one (routing
# attention's commitment loss) to the training loss; it does nothing for the others. No stochastic
# depth, as PoolFormer's detection configs.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixerFormer',
        arch='s12',
        mixers=dict(type='PoolingMixer'),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.),
    neck=dict(in_channels=[64, 128, 320, 512]))
custom_hooks = [dict(type='AuxiliaryLossHook')]
