"""Key converter for the official L2ViT release (ChuanyangZheng/L2ViT): the ImageNet models of
``classification/models/l2vit.py`` and the mmdet / mmseg backbones (with ``norm0..3``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^downsample_layers\.0\.proj\.proj\.', lambda m: 'stages.0.downsample.proj.'),
    (r'^downsample_layers\.(\d)\.proj\.', lambda m: f'stages.{m.group(1)}.downsample.conv.'),
    (r'^downsample_layers\.(\d)\.norm\.', lambda m: f'stages.{m.group(1)}.downsample.norm.'),
    (r'^stages\.(\d)\.(\d+)\.', lambda m: f'stages.{m.group(1)}.blocks.{m.group(2)}.'),
    (r'\.cpe\.([01])\.', lambda m: f'.cpe{int(m.group(1)) + 1}.'),
    (r'\.norm3\.', lambda m: '.attn.lcm_norm.'),
    (r'\.local_mp\.', lambda m: '.attn.lcm.'),
    (r'^norm(\d)\.', lambda m: f'stages.{m.group(1)}.norm.'),
]


@register_converter('l2vit')
def convert_l2vit(state_dict: dict) -> dict:
    """Official keys (``downsample_layers.0.proj.proj.1`` the stem's first BN,
    ``downsample_layers.2.{norm,proj}``, ``stages.2.3.cpe.0.proj``, ``stages.2.3.attn.temperature``,
    ``stages.2.3.norm3``, ``stages.2.3.local_mp.conv1``, ``norm3`` of the dense-task backbone)
    -> the toolkit's (``stages.0.downsample.proj.1``, ``stages.2.downsample.{norm,conv}``,
    ``stages.2.blocks.3.cpe1.proj``, ``stages.2.blocks.3.attn.temperature``,
    ``stages.2.blocks.3.attn.lcm_norm``, ``stages.2.blocks.3.attn.lcm.conv1``,
    ``stages.3.norm``). The classifier (``norm``, ``head``) keeps its names and is reported as
    unused by a backbone; an ImageNet checkpoint has no per-stage output norms (reported as
    missing, left at identity affines). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
