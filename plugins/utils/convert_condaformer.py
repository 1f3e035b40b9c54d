"""Key converter for the official ConDaFormer checkpoints (LHDuan/ConDaFormer, ``pcr`` layout).

The official model (``ConDaFormer-v1m1`` / ``ConDaFormer-small-v1m1``) is one module producing
logits; checkpoints hold ``{'state_dict': ...}`` (``module.`` prefixed when trained with DDP, both
unwrapped by the loader). Official -> toolkit (``PointCloudSegmentor``):

- ``stem.0`` / ``stem.1`` -> ``backbone.stem_conv`` / ``backbone.stem_norm``;
  ``stem.3.conv{1,2}`` / ``stem.3.bn{1,2}`` -> ``backbone.stem_block.conv{1,2}`` / ``norm{1,2}``
  (``stem.3.proj.0`` / ``.1`` -> ``proj_conv`` / ``proj_norm``);
- ``pool<i>`` -> ``backbone.pools.<i-1>``; ``block<i>.<j>`` -> ``backbone.encoder.<i-1>.<j>`` for
  the ``S`` encoder stages, ``block<S+i>.<j>`` -> ``backbone.decoder.<i-1>.<j>``;
  ``unpool<i>`` -> ``backbone.unpools.<i-1>``;
- in blocks, ``attn.conv_1.{0,1}`` -> ``attn.lse_pre.pointwise`` / ``pointwise_norm``,
  ``attn.conv_3.{0,1,3,4}`` -> ``attn.lse_pre.depthwise`` / ``depthwise_norm`` / ``reduce`` /
  ``reduce_norm``; ``conv_1_post`` / ``conv_3_post`` the same into ``attn.lse_post``;
- ``final.{0,1,3}`` -> ``head.fc`` / ``head.norm`` / ``head.cls``.

Sparse conv weights keep spconv 2.x's ``(out, kx, ky, kz, in / groups)`` layout (the toolkit's
``SubMConv3d`` uses it, including spconv's reading of 1x1 weights), so tensors are not reshaped.
"""
import re
from collections import OrderedDict

from .converters import register_converter

_LSE = {'0': 'pointwise', '1': 'pointwise_norm'}
_LSE3 = {'0': 'depthwise', '1': 'depthwise_norm', '3': 'reduce', '4': 'reduce_norm'}
_STEM = {'conv1': 'conv1', 'conv2': 'conv2', 'bn1': 'norm1', 'bn2': 'norm2',
         'proj.0': 'proj_conv', 'proj.1': 'proj_norm'}


def _is_official(state_dict: dict) -> bool:
    return any(k.startswith(('stem.0.', 'final.', 'block1.')) for k in state_dict)


def _num_stages(state_dict: dict) -> int:
    pools = {int(m.group(1)) for k in state_dict for m in [re.match(r'pool(\d+)\.', k)] if m}
    if not pools:
        raise KeyError('an official ConDaFormer checkpoint has pool<i> keys; none found')
    return max(pools)


def _convert_key(key: str, stages: int) -> str:
    m = re.match(r'stem\.0\.(.*)', key)
    if m:
        return f'backbone.stem_conv.{m.group(1)}'
    m = re.match(r'stem\.1\.(.*)', key)
    if m:
        return f'backbone.stem_norm.{m.group(1)}'
    m = re.match(r'stem\.3\.(conv1|conv2|bn1|bn2|proj\.0|proj\.1)\.(.*)', key)
    if m:
        return f'backbone.stem_block.{_STEM[m.group(1)]}.{m.group(2)}'
    m = re.match(r'pool(\d+)\.(.*)', key)
    if m:
        return f'backbone.pools.{int(m.group(1)) - 1}.{m.group(2)}'
    m = re.match(r'unpool(\d+)\.(.*)', key)
    if m:
        return f'backbone.unpools.{int(m.group(1)) - 1}.{m.group(2)}'
    m = re.match(r'block(\d+)\.(\d+)\.(.*)', key)
    if m:
        stage, index, rest = int(m.group(1)), m.group(2), m.group(3)
        part = (f'encoder.{stage - 1}' if stage <= stages else f'decoder.{stage - stages - 1}')
        lse = re.match(r'attn\.conv_(1|3)(_post)?\.(\d+)\.(.*)', rest)
        if lse:
            kind, post, layer, tail = lse.groups()
            names = _LSE if kind == '1' else _LSE3
            rest = f'attn.lse_{"post" if post else "pre"}.{names[layer]}.{tail}'
        return f'backbone.{part}.{index}.{rest}'
    m = re.match(r'final\.(0|1|3)\.(.*)', key)
    if m:
        return f'head.{dict(zip("013", ("fc", "norm", "cls")))[m.group(1)]}.{m.group(2)}'
    return key


@register_converter('condaformer')
def convert_condaformer(state_dict: dict) -> dict:
    """Official ConDaFormer keys -> ``PointCloudSegmentor`` keys; toolkit keys pass through."""
    if not _is_official(state_dict):
        return OrderedDict(state_dict)
    stages = _num_stages(state_dict)
    return OrderedDict((_convert_key(k, stages), v) for k, v in state_dict.items())


def convert_condaformer_backbone(state_dict: dict) -> dict:
    """The same for a bare ``ConDaFormer`` backbone: only ``backbone.`` keys, prefix removed."""
    converted = convert_condaformer(state_dict)
    if not any(k.startswith('backbone.') for k in converted):
        return converted
    return OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()
                       if k.startswith('backbone.'))
