"""Key converter for the official FaViT release (q2479036243/FaViT): the ImageNet models
(``favit_b0..b3`` of ``classification/favit.py``) and the detection / segmentation backbones
(same keys, no ``head``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.patch_embed.'),
    (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
    (r'^norm(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.norm.'),
    (r'\.mlp\.dwconv\.dwconv\.', lambda m: '.mlp.dwconv.'),
]


@register_converter('favit')
def convert_favit(state_dict: dict) -> dict:
    """Official keys (``patch_embed1.proj``, ``block3.5.attn.single_heads.1``,
    ``block1.0.mlp.dwconv.dwconv``, ``norm4``) -> the toolkit's (``stages.0.patch_embed.proj``,
    ``stages.2.blocks.5.attn.single_heads.1``, ``stages.0.blocks.0.mlp.dwconv``,
    ``stages.3.norm``); the attention keeps the official names. The classifier ``head`` keeps its
    name (reported as unused by a backbone). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
