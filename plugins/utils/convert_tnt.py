"""Key converters for TNT (the official release of huawei-noah/Efficient-AI-Backbones
``tnt_pytorch/tnt.py`` and timm's ``tnt_s/b_patch16_224``) and PyramidTNT (the official
``tnt_pytorch/pyramid_tnt.py``); the layout is recognised per key."""
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


_PYRAMID_RULES = [
    (r'^patch_embed\.', 'stages.0.patch_embed.'),
    (r'^(outer_pos|inner_pos)$', r'stages.0.\1'),
    (r'^word_merges\.(\d)\.', lambda m: f'stages.{int(m.group(1)) + 1}.word_merge.'),
    (r'^sentence_merges\.(\d)\.', lambda m: f'stages.{int(m.group(1)) + 1}.sentence_merge.'),
    (r'_merge\.conv\.0\.', '_merge.conv.'),
    (r'^norm\.', 'stages.3.norm.'),
]


@register_converter('pyramid_tnt')
def convert_pyramid_tnt(state_dict: dict) -> dict:
    """Official keys (``patch_embed.{common,inner,outer}_conv(s).*``, ``outer_pos``,
    ``inner_pos``, ``word_merges.{k}.{norm,conv.0}``, ``sentence_merges.{k}.{norm,conv.0}``,
    ``stages.{i}.blocks.{j}.*``, ``stages.{i}.relative_pos``, ``norm``) -> the toolkit's (stage 0
    holds ``patch_embed``, ``outer_pos``, ``inner_pos``; stage ``k + 1`` its ``word_merge`` /
    ``sentence_merge`` (``conv`` without the Sequential); ``stages.3.norm``); blocks and biases
    keep their names. The classifier ``head`` is reported as unused. Toolkit keys pass
    through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _PYRAMID_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
