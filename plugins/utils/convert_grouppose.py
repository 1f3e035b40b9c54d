"""Key converter for the official Group Pose checkpoints (Michel-liu/GroupPose).

The official ``GroupPose`` model holds ``backbone.0.body`` (a torchvision ResNet, frozen BN) or
``backbone.0`` (Swin), ``input_proj.<l>`` (conv + GroupNorm per level; 1x1 for the backbone's
maps, 3x3 stride 2 for the extra ones), ``transformer.*`` (encoder, decoder, two-stage heads,
query embeddings), ``class_embed.<i>`` and ``pose_embed.<i>`` (per decoder layer; the same
modules appear again under ``transformer.decoder.*``). Official -> toolkit
(``GroupPoseEstimator``: mmdet ResNet / SwinTransformer, ``ChannelMapper``, ``GroupPoseHead``):

- ``backbone.0.body.<k>`` -> ``backbone.<k>`` (ResNet: same names); Swin through mmdet's
  ``swin_converter``;
- ``input_proj.<l>.{0,1}`` -> ``neck.convs.<l>.{conv,gn}`` (1x1), ``neck.extra_convs.<j>...`` (3x3);
- ``transformer.level_embed`` / ``keypoint_embedding`` / ``instance_embedding`` -> ``head.*``;
  ``transformer.enc_output{,_norm}`` -> ``head.memory_trans_{fc,norm}``;
  ``transformer.enc_out_class_embed`` -> ``head.enc_cls_head``;
  ``transformer.enc_pose_embed`` -> ``head.enc_keypoint_offsets``;
- encoder layer ``self_attn`` (same names), ``norm1`` / ``norm2`` -> ``norms.0`` / ``norms.1``,
  ``linear1`` / ``linear2`` -> ``ffn.layers.0.0`` / ``ffn.layers.1``;
- decoder layer ``within_attn`` / ``within_norm`` / ``across_attn`` / ``across_norm`` /
  ``cross_attn`` (same names), ``norm1`` -> ``cross_norm``, ``linear1`` / ``linear2`` -> ``ffn``,
  ``norm2`` -> ``ffn_norm``; ``half_pose_ref_point_head`` -> ``ref_point_head``;
- ``class_embed.<i>`` -> ``head.cls_heads.<i>``; ``pose_embed.<i>`` ->
  ``head.decoder.keypoint_offsets.<i>`` (the ``transformer.decoder`` copies are dropped).

Files of the toolkit's own layout pass through, with the names of earlier versions
(``enc_keypoint_head``, ``decoder.keypoint_heads``, and the ``enc_head`` / ``decoder.heads`` that
mmpose's key rename made of them) moved to the current ones. No toolkit key contains
``keypoint_head``, so mmpose's rename of such keys in files without version metadata (a
converted file has none) cannot drop tensors any more.
"""
import re
from collections import OrderedDict

from .converters import register_converter

_ENCODER = {'norm1': 'norms.0', 'norm2': 'norms.1', 'linear1': 'ffn.layers.0.0',
            'linear2': 'ffn.layers.1'}
_DECODER = {'norm1': 'cross_norm', 'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1',
            'norm2': 'ffn_norm'}
_TRANSFORMER = {'level_embed': 'head.level_embed',
                'keypoint_embedding': 'head.keypoint_embedding',
                'instance_embedding': 'head.instance_embedding',
                'enc_output_norm': 'head.memory_trans_norm',
                'enc_output': 'head.memory_trans_fc',
                'enc_out_class_embed': 'head.enc_cls_head',
                'enc_pose_embed': 'head.enc_keypoint_offsets',
                'decoder.half_pose_ref_point_head': 'head.decoder.ref_point_head'}
# names of earlier toolkit versions, also as mmpose's rename of 'keypoint_head' leaves them
_LEGACY = [(r'^head\.enc_(keypoint_)?head\.', 'head.enc_keypoint_offsets.'),
           (r'^head\.decoder\.(keypoint_)?heads\.', 'head.decoder.keypoint_offsets.')]


def _is_official(state_dict: dict) -> bool:
    return any(k.startswith(('transformer.', 'input_proj.')) for k in state_dict)


def _layer_key(rest: str, names: dict) -> str:
    first, _, tail = rest.partition('.')
    return f'{names[first]}.{tail}' if first in names else rest


def _transformer_key(rest: str):
    m = re.match(r'encoder\.layers\.(\d+)\.(.*)', rest)
    if m:
        return f'head.encoder.layers.{m.group(1)}.{_layer_key(m.group(2), _ENCODER)}'
    m = re.match(r'decoder\.layers\.(\d+)\.(.*)', rest)
    if m:
        return f'head.decoder.layers.{m.group(1)}.{_layer_key(m.group(2), _DECODER)}'
    if rest.startswith(('decoder.pose_embed.', 'decoder.class_embed.')):
        return None  # the same modules as the top-level pose_embed / class_embed
    for name, target in _TRANSFORMER.items():
        if rest == name or rest.startswith(name + '.'):
            return target + rest[len(name):]
    return f'head.{rest}'


def _neck_keys(state_dict: dict) -> dict:
    """``input_proj.<l>`` -> ``neck.convs.<i>`` (1x1 convs) or ``neck.extra_convs.<j>`` (3x3)."""
    levels = sorted({int(m.group(1)) for k in state_dict
                     for m in [re.match(r'input_proj\.(\d+)\.0\.weight$', k)] if m})
    names, convs, extra = {}, 0, 0
    for level in levels:
        if state_dict[f'input_proj.{level}.0.weight'].shape[-1] == 1:
            names[level], convs = f'neck.convs.{convs}', convs + 1
        else:
            names[level], extra = f'neck.extra_convs.{extra}', extra + 1
    return names


def _backbone(state_dict: dict) -> OrderedDict:
    resnet = OrderedDict((k[len('backbone.0.body.'):], v) for k, v in state_dict.items()
                         if k.startswith('backbone.0.body.'))
    if resnet:
        return resnet
    swin = OrderedDict((k[len('backbone.0.'):], v) for k, v in state_dict.items()
                       if k.startswith('backbone.0.'))
    if swin:
        from mmdet.models.backbones.swin import swin_converter
        swin = swin_converter(swin)
    return swin


@register_converter('grouppose')
def convert_grouppose(state_dict: dict) -> dict:
    """Official Group Pose keys -> ``GroupPoseEstimator`` keys; toolkit keys pass through."""
    if not _is_official(state_dict):
        out = OrderedDict()
        for key, value in state_dict.items():
            for pattern, repl in _LEGACY:
                key = re.sub(pattern, repl, key)
            out[key] = value
        return out
    out = OrderedDict(('backbone.' + k, v) for k, v in _backbone(state_dict).items())
    neck = _neck_keys(state_dict)
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            continue
        m = re.match(r'input_proj\.(\d+)\.([01])\.(.*)', key)
        if m:
            part = 'conv' if m.group(2) == '0' else 'gn'
            out[f'{neck[int(m.group(1))]}.{part}.{m.group(3)}'] = value
            continue
        m = re.match(r'(class_embed|pose_embed)\.(\d+)\.(.*)', key)
        if m:
            target = 'head.cls_heads' if m.group(1) == 'class_embed' else \
                'head.decoder.keypoint_offsets'
            out[f'{target}.{m.group(2)}.{m.group(3)}'] = value
            continue
        if key.startswith('transformer.'):
            target = _transformer_key(key[len('transformer.'):])
            if target is not None:
                out[target] = value
            continue
        out[key] = value
    return out
