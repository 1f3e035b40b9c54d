"""Key converter for the official CATANet release (EquationWalker/CATANet, BasicSR layout).

The release stores ``{'params': state_dict}`` (unwrapped by the loader). Official -> toolkit:

- ``first_conv`` -> ``conv_first``; ``last_conv`` -> ``conv_last``; ``mid_convs.i`` ->
  ``blocks.i.conv``;
- ``upconv`` (x2/x3) -> ``upsample.0``; ``upconv1`` / ``upconv2`` (x4) -> ``upsample.0`` /
  ``upsample.3``;
- TAB ``blocks.i.0.``: ``means`` / ``initted`` -> ``centers`` / ``centers_initialized``,
  ``irca_attn.to_k|to_v`` -> ``center_k|center_v``, ``iasa_attn.`` -> ``attn.``,
  ``conv1x1`` -> ``proj``, ``mlp.norm`` -> ``ffn_norm``, ``mlp.fn.`` -> ``ffn.``;
- LRSA ``blocks.i.1.``: ``layer.0.norm`` -> ``attn_norm``, ``layer.0.fn.`` -> (attention
  projections directly on LRSA), ``layer.1.norm`` -> ``ffn_norm``, ``layer.1.fn.`` -> ``ffn.``;
- ConvFFN ``dwconv.depthwise_conv.0`` -> ``dwconv``.
"""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^first_conv\.', 'conv_first.'),
    (r'^last_conv\.', 'conv_last.'),
    (r'^mid_convs\.(\d+)\.', r'blocks.\1.conv.'),
    (r'^upconv\.', 'upsample.0.'),
    (r'^upconv1\.', 'upsample.0.'),
    (r'^upconv2\.', 'upsample.3.'),
    (r'^blocks\.(\d+)\.0\.means$', r'blocks.\1.tab.centers'),
    (r'^blocks\.(\d+)\.0\.initted$', r'blocks.\1.tab.centers_initialized'),
    (r'^blocks\.(\d+)\.0\.irca_attn\.to_k\.', r'blocks.\1.tab.center_k.'),
    (r'^blocks\.(\d+)\.0\.irca_attn\.to_v\.', r'blocks.\1.tab.center_v.'),
    (r'^blocks\.(\d+)\.0\.iasa_attn\.', r'blocks.\1.tab.attn.'),
    (r'^blocks\.(\d+)\.0\.conv1x1\.', r'blocks.\1.tab.proj.'),
    (r'^blocks\.(\d+)\.0\.mlp\.norm\.', r'blocks.\1.tab.ffn_norm.'),
    (r'^blocks\.(\d+)\.0\.mlp\.fn\.', r'blocks.\1.tab.ffn.'),
    (r'^blocks\.(\d+)\.0\.norm\.', r'blocks.\1.tab.norm.'),
    (r'^blocks\.(\d+)\.1\.layer\.0\.norm\.', r'blocks.\1.lrsa.attn_norm.'),
    (r'^blocks\.(\d+)\.1\.layer\.0\.fn\.', r'blocks.\1.lrsa.'),
    (r'^blocks\.(\d+)\.1\.layer\.1\.norm\.', r'blocks.\1.lrsa.ffn_norm.'),
    (r'^blocks\.(\d+)\.1\.layer\.1\.fn\.', r'blocks.\1.lrsa.ffn.'),
    (r'\.dwconv\.depthwise_conv\.0\.', '.dwconv.'),
]


def _is_official(state_dict: dict) -> bool:
    return any(k.startswith(('first_conv.', 'mid_convs.')) for k in state_dict)


@register_converter('catanet')
def convert_catanet(state_dict: dict) -> dict:
    """Official CATANet keys -> the toolkit's ``CATANet``; toolkit keys pass through."""
    if not _is_official(state_dict):
        return OrderedDict(state_dict)
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
