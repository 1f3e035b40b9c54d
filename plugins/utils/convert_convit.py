"""Key converter for ConViT: the official release (facebookresearch/convit) and timm's
``convit_tiny/small/base``, which share one layout (timm took the official keys as they are)."""
import re
from collections import OrderedDict

from .converters import group_isotropic_blocks, register_converter

_RULES = [
    (r'^patch_embed\.', 'stages.0.patch_embed.'),
    (r'^pos_embed$', 'stages.0.pos_embed'),
    (r'^norm\.', 'stages.3.norm.'),
]


@register_converter('convit')
def convert_convit(state_dict: dict) -> dict:
    """Official / timm keys (``patch_embed.proj``, ``pos_embed``, ``cls_token``,
    ``blocks.{i}.attn.{qk,v,proj,pos_proj,gating_param}`` / ``blocks.{i}.attn.qkv``, ``norm``) ->
    the toolkit's four isotropic stages (``stages.0.patch_embed.proj``, ``stages.0.pos_embed``,
    ``stages.{i // 3}.blocks.{i % 3}.*``, ``stages.{g}.cls_token`` with ``g`` the stage of the
    first block after the GPSA blocks, ``stages.3.norm``); inside a block the names are shared.
    The classifier ``head`` keeps its name and is reported as unused. Toolkit keys pass through."""
    state = group_isotropic_blocks(state_dict)
    depth = _depth(state)
    local = _local_layers(state, depth)
    out = OrderedDict()
    for key, value in state.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        if key == 'cls_token' and depth:
            key = f'stages.{local // (depth // 4)}.cls_token'
        out[key] = value
    return out


def _depth(state: dict) -> int:
    blocks = {m.group(1, 2) for m in map(re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.').match,
                                         state) if m}
    return len(blocks)


def _local_layers(state: dict, depth: int) -> int:
    """Blocks with GPSA (``pos_proj``) before the first plain self-attention block."""
    per = max(depth // 4, 1)
    gpsa = {int(m.group(1)) * per + int(m.group(2))
            for m in map(re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.attn\.pos_proj\.').match,
                         state) if m}
    return next((i for i in range(depth) if i not in gpsa), depth)
