"""Key converter for Hyena ViT: the official HyenaND DeiT (``patch_embed``, ``pos_embed``,
``blocks.i``, ``norm``, ``head``) to the toolkit's four groups of blocks."""
import re
from collections import OrderedDict
from typing import Optional, Sequence

from .converters import register_converter


def _groups(state_dict: dict, depths: Optional[Sequence[int]]):
    """``block index -> (group, index in group)``; four equal groups when ``depths`` is None."""
    if depths is None:
        found = {int(m.group(1)) for m in map(re.compile(r'^blocks\.(\d+)\.').match, state_dict)
                 if m}
        if not found:
            return {}, 3
        total = max(found) + 1
        if total % 4:
            raise ValueError(f'the checkpoint has {total} blocks, which do not split into four '
                             f'equal groups: pass depths=[...] (the backbone does)')
        depths = [total // 4] * 4
    where, start = {}, 0
    for group, depth in enumerate(depths):
        for j in range(depth):
            where[start + j] = (group, j)
        start += depth
    return where, len(depths) - 1


@register_converter('hyena_vit')
def convert_hyena_vit(state_dict: dict, depths: Optional[Sequence[int]] = None) -> dict:
    """Official keys -> toolkit keys: ``patch_embed.proj`` and ``pos_embed`` ->
    ``stages.0.patch_embed.proj`` / ``stages.0.pos_embed``; ``blocks.i`` ->
    ``stages.g.blocks.j`` (``depths`` blocks per group, default four equal groups); ``norm`` ->
    ``stages.3.norm``. Inside a block the names are the official ones (``norm1``, ``attn.in_proj``,
    ``attn.short_filter``, ``attn.filter_fn.implicit_filter.0`` ... for Hyena, ``attn.qkv`` /
    ``attn.proj`` for attention, ``norm2``, ``mlp.fc1``, ``mlp.fc2``). The classifier (``head``)
    keeps its name and is reported as unused by a backbone. Toolkit keys pass through."""
    where, last = _groups(state_dict, depths)
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(('patch_embed.', 'pos_embed')):
            key = 'stages.0.' + key
        elif key.startswith('norm.'):
            key = f'stages.{last}.' + key
        else:
            m = re.match(r'^blocks\.(\d+)\.', key)
            if m and int(m.group(1)) in where:
                group, j = where[int(m.group(1))]
                key = f'stages.{group}.blocks.{j}.' + key[m.end():]
        out[key] = value
    return out
