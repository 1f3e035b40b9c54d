"""Key converter for timm's HaloNets (``halonet26t``, ``halonet50ts``; timm's ``byoanet.py``, the
reference implementation: HaloNet has no official code)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^stem\.', lambda m: 'stages.0.stem.'),
    (r'^stages\.(\d)\.(\d+)\.', lambda m: f'stages.{m.group(1)}.blocks.{m.group(2)}.'),
]


@register_converter('halonet')
def convert_halonet(state_dict: dict) -> dict:
    """timm keys (``stem.conv1.conv``, ``stages.2.1.self_attn.q``, ``stages.3.0.post_attn``) ->
    the toolkit's (``stages.0.stem.conv1.conv``, ``stages.2.blocks.1.self_attn.q``,
    ``stages.3.blocks.0.post_attn``); the block internals keep timm's names. The classifier
    (``head.fc``) keeps its name and is reported as unused by a backbone. Toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
