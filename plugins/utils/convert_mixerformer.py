"""Key converter for MixerFormer: PoolFormer's official release (sail-sg/poolformer, the ImageNet
models ``poolformer_s12`` .. ``poolformer_m48`` and the mmdet / mmseg ``poolformer_*_feat``
backbones), loaded into MixerFormer with the pooling mixer."""
import re
from collections import OrderedDict

from .converters import register_converter


def _network(match) -> str:
    """``network.{2i}.{j}.`` is block j of stage i; ``network.{2i+1}.`` the down-sampling
    into stage i+1."""
    index, rest = int(match.group(1)), match.group(2)
    if index % 2 == 0:
        return f'stages.{index // 2}.blocks.{rest}'
    return f'stages.{(index + 1) // 2}.patch_embed.{rest}'


_RULES = [
    (r'^patch_embed\.', lambda m: 'stages.0.patch_embed.'),
    (r'^network\.(\d+)\.(.*)$', _network),
    # the dense-prediction backbone's output norms sit after network.{0,2,4,6}
    (r'^norm(\d+)\.', lambda m: f'stages.{int(m.group(1)) // 2}.norm.'),
]


@register_converter('mixerformer')
def convert_poolformer(state_dict: dict) -> dict:
    """Official PoolFormer keys (``patch_embed.proj``, ``network.4.3.token_mixer``,
    ``network.4.3.mlp.fc1``, ``network.3.proj``, ``norm6``) -> the toolkit's
    (``stages.0.patch_embed.proj``, ``stages.2.blocks.3.token_mixer``,
    ``stages.2.blocks.3.mlp.fc1``, ``stages.2.patch_embed.proj``, ``stages.3.norm``); inside a
    block the names are shared (``norm1``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``,
    ``layer_scale_1``, ``layer_scale_2``). The ImageNet classifier (``norm``, ``head``) keeps its
    names and is reported as unused by a backbone; an ImageNet checkpoint has no output norms
    (reported as missing, left at identity affines, as the official detection backbone leaves
    them). Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in _RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
