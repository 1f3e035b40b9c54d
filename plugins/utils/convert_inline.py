"""Key converter for the official InLine release (LeapLabTHU/InLine): the ImageNet models of
``models/inline_pvt.py`` (InLine-PVT) and ``models/inline_swin.py`` (InLine-Swin)."""
import re
from collections import OrderedDict

import torch

from .converters import register_converter

_RULES = [
    # InLine-PVT
    (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.patch_embed.'),
    (r'^pos_embed(\d)$', lambda m: f'stages.{int(m.group(1)) - 1}.pos_embed'),
    (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
    # InLine-Swin
    (r'^patch_embed\.', lambda m: 'stages.0.downsample.'),
    (r'^layers\.(\d)\.downsample\.', lambda m: f'stages.{int(m.group(1)) + 1}.downsample.'),
    (r'^layers\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.blocks.{m.group(2)}.'),
]
# buffers of the official Swin blocks that the toolkit recomputes for every map size
_DROPPED = re.compile(r'\.(relative_position_index|attn_mask)$')


@register_converter('inline')
def convert_inline(state_dict: dict) -> dict:
    """Official keys -> the toolkit's.

    InLine-PVT: ``patch_embed2.proj``, ``pos_embed2``, ``block2.1.attn.{q,kv,proj,residual}``
    -> ``stages.1.patch_embed.proj``, ``stages.1.pos_embed``, ``stages.1.blocks.1.attn.*``.
    InLine-Swin: ``patch_embed.{proj,norm}`` -> ``stages.0.downsample.*``;
    ``layers.1.downsample.{norm,reduction}`` (the merging at the end of stage 2) ->
    ``stages.2.downsample.*``; ``layers.2.blocks.3.*`` -> ``stages.2.blocks.3.*``. The fused
    ``attn.qkv`` of an InLine block (one with ``attn.residual``) is split into InLine attention's
    ``attn.q`` (first C rows) and ``attn.kv`` (K then V rows); window softmax blocks keep ``qkv``
    and ``relative_position_bias_table``. The ``relative_position_index`` / ``attn_mask`` buffers
    are dropped (recomputed per map size). The classifier (``head``, Swin's ``norm``) keeps its
    names and is reported as unused by a backbone. Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    inline_blocks = {k[:-len('residual.0.weight')] for k in out
                     if k.endswith('.attn.residual.0.weight')}
    for prefix in inline_blocks:
        for kind in ('weight', 'bias'):
            fused = out.pop(f'{prefix}qkv.{kind}', None)
            if fused is None:
                continue
            q, kv = torch.split(fused, [fused.shape[0] // 3, 2 * fused.shape[0] // 3])
            out[f'{prefix}q.{kind}'] = q
            out[f'{prefix}kv.{kind}'] = kv
    return out
