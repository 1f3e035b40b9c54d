"""Key converter for the official BiFormer release (rayleizhu/BiFormer): the ImageNet models and
the detection / segmentation backbones (``BiFormer_mm``, with ``extra_norms``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^downsample_layers\.(\d)\.', lambda m: f'stages.{m.group(1)}.downsample.'),
    (r'^stages\.(\d)\.(\d+)\.', lambda m: f'stages.{m.group(1)}.blocks.{m.group(2)}.'),
    (r'^extra_norms\.(\d)\.', lambda m: f'stages.{m.group(1)}.norm.'),
    (r'\.mlp\.0\.', lambda m: '.mlp.fc1.'),
    (r'\.mlp\.3\.', lambda m: '.mlp.fc2.'),
]


@register_converter('biformer')
def convert_biformer(state_dict: dict) -> dict:
    """Official keys (``downsample_layers.0.0``, ``stages.2.5.attn.qkv.qkv``, ``stages.0.1.mlp.0``,
    ``extra_norms.3``) -> the toolkit's (``stages.0.downsample.0``,
    ``stages.2.blocks.5.attn.qkv.qkv``, ``stages.0.blocks.1.mlp.fc1``, ``stages.3.norm``). The
    classification ``norm`` (BatchNorm) and ``head`` keep their names (reported as unused by a
    backbone); an ImageNet checkpoint has no per-stage output norms (reported as missing, left at
    identity). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
