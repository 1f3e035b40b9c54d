"""Key converter for the official DLGSANet release (NeonLeexiang/DLGSANet, BasicSR layout).

Official -> toolkit:

- ``overlap_embed.0.proj`` -> ``conv_first``; ``upsample.0`` stays;
- ``deep_feature_extraction.g.body.k`` -> ``groups.g.layers.k`` (k < 2 * blocks; even k are
  MHDLSA layers, odd k SparseGSA layers) and ``groups.g.conv`` (the last k);
  ``deep_feature_extraction.G`` (after the groups) -> ``conv_after_body``;
- in an MHDLSA layer: ``norm1.body`` / ``norm2.body`` -> ``norm1`` / ``norm2``,
  ``IDynamicDWConv.conv0|conv1`` -> ``mhdlsa.proj_in|proj_out``,
  ``IDynamicDWConv.conv.conv1.0|conv1.1|conv2.0`` -> ``mhdlsa.dynamic.reduce|context|to_kernel``,
  ``IDynamic_ffn`` -> ``ffn``;
- in a SparseGSA layer: ``norm3.body`` / ``norm4.body`` -> ``norm1`` / ``norm2``,
  ``restormer_attn`` -> ``attn``, ``restormer_ffn`` -> ``ffn``.
"""
import re
from collections import OrderedDict

from .converters import register_converter

_LAYER_RULES = [
    (r'\.norm([12])\.body\.', r'.norm\1.'),
    (r'\.norm3\.body\.', '.norm1.'),
    (r'\.norm4\.body\.', '.norm2.'),
    (r'\.IDynamicDWConv\.conv0\.', '.mhdlsa.proj_in.'),
    (r'\.IDynamicDWConv\.conv1\.', '.mhdlsa.proj_out.'),
    (r'\.IDynamicDWConv\.conv\.conv1\.0\.', '.mhdlsa.dynamic.reduce.'),
    (r'\.IDynamicDWConv\.conv\.conv1\.1\.', '.mhdlsa.dynamic.context.'),
    (r'\.IDynamicDWConv\.conv\.conv2\.0\.', '.mhdlsa.dynamic.to_kernel.'),
    (r'\.IDynamicDWConv\.conv\.', '.mhdlsa.dynamic.'),  # static ablation (idynamic=False)
    (r'\.IDynamic_ffn\.', '.ffn.'),
    (r'\.restormer_attn\.', '.attn.'),
    (r'\.restormer_ffn\.', '.ffn.'),
]


def _is_official(state_dict: dict) -> bool:
    return any(k.startswith(('overlap_embed.', 'deep_feature_extraction.')) for k in state_dict)


@register_converter('dlgsanet')
def convert_dlgsanet(state_dict: dict) -> dict:
    """Official DLGSANet keys -> the toolkit's ``DLGSANet``; toolkit keys pass through.

    Only the released layout (``body_norm=False``) is supported: with ``body_norm`` the official
    model has extra LayerNorms that ours does not.
    """
    if not _is_official(state_dict):
        return OrderedDict(state_dict)
    group_ids = {int(m.group(1)) for k in state_dict
                 for m in [re.match(r'^deep_feature_extraction\.(\d+)\.body\.', k)] if m}
    last_body = {}  # index of the trailing conv in each group's body
    for k in state_dict:
        m = re.match(r'^deep_feature_extraction\.(\d+)\.body\.(\d+)\.', k)
        if m:
            g, i = int(m.group(1)), int(m.group(2))
            last_body[g] = max(last_body.get(g, 0), i)
    out = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^overlap_embed\.0\.proj\.', 'conv_first.', key)
        m = re.match(r'^deep_feature_extraction\.(\d+)\.body\.(\d+)\.(.*)$', key)
        if m:
            g, i, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            key = (f'groups.{g}.conv.{rest}' if i == last_body[g] else
                   f'groups.{g}.layers.{i}.{rest}')
        m = re.match(r'^deep_feature_extraction\.(\d+)\.(weight|bias)$', key)
        if m and int(m.group(1)) not in group_ids:
            key = f'conv_after_body.{m.group(2)}'
        for pattern, repl in _LAYER_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
