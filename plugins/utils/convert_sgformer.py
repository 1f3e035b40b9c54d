"""Key converter for the official SG-Former release (OliverRensu/SG-Former, ``sgformer.py``:
``sgformer_s / _m / _b``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^pos_embed$', lambda m: 'stages.0.pos_embed'),
    (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.patch_embed.'),
    (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
    (r'^norm(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.norm.'),
    (r'\.mlp\.dwconv\.dwconv\.', lambda m: '.mlp.dwconv.'),
    (r'^(stages\.\d\.patch_embed\..*)\.c\.', lambda m: f'{m.group(1)}.conv.'),
    (r'^(stages\.\d\.patch_embed\..*)\.bn\.', lambda m: f'{m.group(1)}.norm.'),
]


@register_converter('sgformer')
def convert_sgformer(state_dict: dict) -> dict:
    """Official keys (``pos_embed``, ``patch_embed1.conv.0.c``, ``patch_embed2.conv2.bn``,
    ``block3.5.attn.kv1``, ``block1.0.mlp.dwconv.dwconv``, ``norm4``) -> the toolkit's
    (``stages.0.pos_embed``, ``stages.0.patch_embed.conv.0.conv``,
    ``stages.1.patch_embed.conv2.norm``, ``stages.2.blocks.5.attn.kv1``,
    ``stages.0.blocks.0.mlp.dwconv``, ``stages.3.norm``); the attention keeps the official names
    (``q``, ``kv1``, ``kv2``, ``f1..f3``, ``sr``, ``q1``, ``q2``, ``lepe_linear``, ...). The
    classifier ``head`` keeps its name (reported as unused by a backbone). Toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
