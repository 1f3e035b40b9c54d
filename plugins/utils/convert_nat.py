"""Key converter for the official NAT / DiNAT release (SHI-Labs/Neighborhood-Attention-Transformer):
the ImageNet models and the detection / segmentation backbones (with ``norm{i}``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^patch_embed\.', lambda m: 'stages.0.downsample.'),
    (r'^levels\.(\d)\.downsample\.', lambda m: f'stages.{int(m.group(1)) + 1}.downsample.'),
    (r'^levels\.(\d)\.blocks\.', lambda m: f'stages.{m.group(1)}.blocks.'),
    (r'^norm(\d)\.', lambda m: f'stages.{m.group(1)}.norm.'),
]


@register_converter('nat')
def convert_nat(state_dict: dict) -> dict:
    """Official keys (``patch_embed.proj.0``, ``levels.1.blocks.2.attn.rpb``,
    ``levels.0.downsample.reduction``, ``norm2``) -> the toolkit's (``stages.0.downsample.proj.0``,
    ``stages.1.blocks.2.attn.rpb``, ``stages.1.downsample.reduction``, ``stages.2.norm``). The
    relative position bias ``rpb`` (heads, 2k-1, 2k-1) is taken as it is. The classification ``norm``
    and ``head`` keep their names (reported as unused by a backbone). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
