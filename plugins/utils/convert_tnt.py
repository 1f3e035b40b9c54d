"""Key converter for TNT: the official release (huawei-noah/Efficient-AI-Backbones
``tnt_pytorch/tnt.py``) and timm's ``tnt_s/b_patch16_224``; the layout is recognised per key."""
import re
from collections import OrderedDict

from .converters import group_isotropic_blocks, register_converter

# timm -> official names (timm's checkpoint_filter_fn, read backwards)
_TIMM_TOP = {'pixel_embed': 'patch_embed', 'patch_pos': 'outer_pos', 'pixel_pos': 'inner_pos',
             'norm1_proj': 'proj_norm1', 'norm2_proj': 'proj_norm2'}
_TIMM_BLOCK = {'norm_in': 'inner_norm1', 'attn_in': 'inner_attn', 'norm_mlp_in': 'inner_norm2',
               'mlp_in': 'inner_mlp', 'norm1_proj': 'proj_norm1', 'norm2_proj': 'proj_norm2',
               'norm_out': 'outer_norm1', 'attn_out': 'outer_attn', 'norm_mlp': 'outer_norm2',
               'mlp': 'outer_mlp'}
_EMBEDDING = r'^(patch_embed\.|inner_pos$|outer_pos$|cls_token$|proj_norm1\.|proj\.|proj_norm2\.)'


def _official_tnt_key(key: str) -> str:
    key = re.sub(r'^(\w+)(?=\.|$)', lambda m: _TIMM_TOP.get(m.group(1), m.group(1)), key)
    return re.sub(r'^(blocks\.\d+\.)(\w+)\.',
                  lambda m: m.group(1) + _TIMM_BLOCK.get(m.group(2), m.group(2)) + '.', key)


@register_converter('tnt')
def convert_tnt(state_dict: dict) -> dict:
    """Official keys (``patch_embed.proj``, ``inner_pos`` (1, words, c), ``outer_pos``,
    ``cls_token``, ``proj_norm1/proj/proj_norm2``, ``blocks.{i}.{inner,outer}_{norm1,attn,
    norm2,mlp}``, ``blocks.{i}.proj_norm1/proj/proj_norm2``, ``norm``) and timm's
    (``pixel_embed.proj``, ``pixel_pos`` (1, c, 4, 4), ``patch_pos``, ``norm1_proj``,
    ``blocks.{i}.{norm_in,attn_in,norm_mlp_in,mlp_in,norm_out,attn_out,norm_mlp,mlp}``) -> the
    toolkit's (``stages.0.embed.*`` with the official names, ``stages.{i // 3}.blocks.{i % 3}.*``,
    ``stages.3.norm``). The official ``outer_tokens`` (a frozen, unused zero tensor) is dropped;
    the classifier ``head`` keeps its name and is reported as unused. Toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if key == 'outer_tokens':
            continue
        if not key.startswith('stages.'):
            key = _official_tnt_key(key)
            if key == 'inner_pos' and value.dim() == 4:  # timm's 1 c 4 4 -> 1 (4 4) c
                value = value.flatten(2).transpose(1, 2)
            key = re.sub(_EMBEDDING, r'stages.0.embed.\1', key)
            key = re.sub(r'^norm\.', 'stages.3.norm.', key)
        out[key] = value
    return group_isotropic_blocks(out)
