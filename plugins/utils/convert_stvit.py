"""Key converter for the official STViT release (hhb072/STViT, ``models/stvit.py``)."""
import re
from collections import OrderedDict

from .converters import register_converter

_RULES = [
    (r'^patch_embed\.proj\.', lambda m: 'stages.0.downsample.proj.'),
    (r'^layers\.(\d)\.downsample\.', lambda m: f'stages.{int(m.group(1)) + 1}.downsample.'),
    (r'^layers\.(\d)\.blocks\.(\d+)\.', lambda m: f'stages.{m.group(1)}.blocks.{m.group(2)}.'),
    (r'\.norm1\.norm\.', lambda m: '.norm1.'),
    (r'\.mlp2\.', lambda m: '.mlp.'),
]
# the official Unfold / Fold modules keep their constant identity kernels as frozen parameters
_DROPPED = re.compile(r'\.attn\.(unfold|fold)\.weights$')


@register_converter('stvit')
def convert_stvit(state_dict: dict) -> dict:
    """Official keys -> the toolkit's: ``patch_embed.proj.{0..11}`` (the stem) ->
    ``stages.0.downsample.proj.*``; ``layers.1.downsample.proj`` (the down-sampling at the end of
    stage 2) -> ``stages.2.downsample.proj``; ``layers.2.blocks.3.{pos_embed.conv, norm1.norm,
    attn.stoken_refine.{qkv,proj}, norm2, mlp2.{fc1,conv.conv,fc2}, gamma_1, gamma_2}`` ->
    ``stages.2.blocks.3.{pos_embed.conv, norm1, attn.stoken_refine.*, norm2, mlp.*, gamma_*}``.
    The constant ``attn.unfold.weights`` / ``attn.fold.weights`` (identity 3x3 kernels, not
    trained) are dropped. The classifier (``proj``, ``norm``, ``head``) keeps its names and is
    reported as unused by a backbone. Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
