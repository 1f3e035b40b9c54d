"""Key converter for the official VAN release (Visual-Attention-Network/VAN-Classification)."""
import re
from collections import OrderedDict

from .converters import register_converter

# official key pattern -> toolkit key pattern
_RULES = [
    (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.patch_embed.'),
    (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
    (r'^norm(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.norm.'),
    (r'\.spatial_gating_unit\.conv0\.', lambda m: '.lka.dw_conv.'),
    (r'\.spatial_gating_unit\.conv_spatial\.', lambda m: '.lka.dw_dilated_conv.'),
    (r'\.spatial_gating_unit\.conv1\.', lambda m: '.lka.pw_conv.'),
    (r'\.mlp\.dwconv\.dwconv\.', lambda m: '.mlp.dwconv.'),
]


@register_converter('van')
def convert_van(state_dict: dict) -> dict:
    """Official VAN keys (``patch_embed1.proj``, ``block1.0.attn.spatial_gating_unit.conv0``,
    ``norm1``, ``head``) -> the toolkit's (``stages.0.patch_embed.proj``,
    ``stages.0.blocks.0.attn.lka.dw_conv``, ``stages.0.norm``). The classification ``head`` is
    kept under its name (reported as unused by a backbone). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
