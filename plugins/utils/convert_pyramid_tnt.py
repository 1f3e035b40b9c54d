"""Key converter for PyramidTNT: the official release (huawei-noah/Efficient-AI-Backbones
``tnt_pytorch/pyramid_tnt.py``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_PYRAMID_RULES = [
    (r'^patch_embed\.', 'stages.0.patch_embed.'),
    (r'^(outer_pos|inner_pos)$', r'stages.0.\1'),
    (r'^word_merges\.(\d)\.', lambda m: f'stages.{int(m.group(1)) + 1}.word_merge.'),
    (r'^sentence_merges\.(\d)\.', lambda m: f'stages.{int(m.group(1)) + 1}.sentence_merge.'),
    (r'_merge\.conv\.0\.', '_merge.conv.'),
    (r'^norm\.', 'stages.3.norm.'),
]


@register_converter('pyramid_tnt')
def convert_pyramid_tnt(state_dict: dict) -> dict:
    """Official keys (``patch_embed.{common,inner,outer}_conv(s).*``, ``outer_pos``,
    ``inner_pos``, ``word_merges.{k}.{norm,conv.0}``, ``sentence_merges.{k}.{norm,conv.0}``,
    ``stages.{i}.blocks.{j}.*``, ``stages.{i}.relative_pos``, ``norm``) -> the toolkit's (stage 0
    holds ``patch_embed``, ``outer_pos``, ``inner_pos``; stage ``k + 1`` its ``word_merge`` /
    ``sentence_merge`` (``conv`` without the Sequential); ``stages.3.norm``); blocks and biases
    keep their names. The classifier ``head`` is reported as unused. Toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _PYRAMID_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
