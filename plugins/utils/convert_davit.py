"""Key converter for DaViT: the official release (dingmyu/davit: the ImageNet models and the
mmdet / mmseg backbones) and timm's ``davit_tiny/small/base``; the layout is recognised per key."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    # official: patch_embeds.i.{proj,norm}, main_blocks.i.j.k.cpe.{0,1}, norm{i} (dense tasks)
    (r'^patch_embeds\.(\d)\.proj\.', lambda m: f'stages.{m.group(1)}.downsample.conv.'),
    (r'^patch_embeds\.(\d)\.norm\.', lambda m: f'stages.{m.group(1)}.downsample.norm.'),
    (r'^main_blocks\.(\d)\.', lambda m: f'stages.{m.group(1)}.blocks.'),
    (r'\.cpe\.([01])\.', lambda m: f'.cpe{int(m.group(1)) + 1}.'),
    (r'^norm(\d)\.', lambda m: f'stages.{m.group(1)}.norm.'),
    # timm: stem.{conv,norm}; stages.i.downsample.{norm,conv} and stages.i.blocks.j.k are ours
    (r'^stem\.', lambda m: 'stages.0.downsample.'),
]


@register_converter('davit')
def convert_davit(state_dict: dict) -> dict:
    """Official keys (``patch_embeds.0.proj``, ``patch_embeds.2.norm``,
    ``main_blocks.2.1.0.cpe.1.proj``, ``norm3``) and timm's (``stem.conv``,
    ``stages.2.downsample.conv``, ``stages.2.blocks.1.0.cpe2.proj``) -> the toolkit's
    (``stages.0.downsample.conv``, ``stages.2.downsample.norm``,
    ``stages.2.blocks.1.0.cpe2.proj``, ``stages.3.norm``); inside a block the names are shared
    (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; ``.0`` the
    spatial and ``.1`` the channel block). The classifiers (official ``norms`` / ``head``, timm's
    ``head.norm`` / ``head.fc``) keep their names and are reported as unused by a backbone; an
    ImageNet checkpoint has no per-stage output norms (reported as missing, left at identity
    affines). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
