"""Key converter for RaftMLP: the official release (okojoalg/raft-mlp ``libs/models.py``: ImageNet
models and the mmdet / mmseg ``DetRaftMLP*`` / ``SegRaftMLP*`` backbones) to the toolkit's keys."""
import re
from collections import OrderedDict

from .converters import register_converter

# inside block d of a level (official ``levels.i.fn.(2 + d)``): 1 vertical, 3 horizontal, 5 channel
_PARTS = {'1': 'vertical', '3': 'horizontal', '5': 'channel'}
_LAYERS = {'norm.1.': 'norm.', 'norm.': 'norm.', 'fn.0.': 'fc1.', 'fn.3.': 'fc2.'}
_CHANNEL_LAYERS = {'norm.': 'norm.', 'fn.0.': 'mlp.fc1.', 'fn.3.': 'mlp.fc2.'}


def _block_key(level: str, index: int, rest: str):
    m = re.match(r'^(\d)\.(.*)$', rest)
    if index < 2 or m is None or m.group(1) not in _PARTS:
        return None
    part, tail = _PARTS[m.group(1)], m.group(2)
    layers = _CHANNEL_LAYERS if part == 'channel' else _LAYERS
    for old, new in layers.items():
        if tail.startswith(old):
            return f'stages.{level}.blocks.{index - 2}.{part}.{new}{tail[len(old):]}'
    return None


@register_converter('raftmlp')
def convert_raftmlp(state_dict: dict) -> dict:
    """Official keys -> toolkit keys: ``levels.i.fn.0.fc`` (cross-scale embedding) ->
    ``stages.i.embed.fc``; in block ``d`` (``levels.i.fn.(2 + d)``) the vertical raft mixing
    ``.1.norm.1`` / ``.1.fn.0`` / ``.1.fn.3`` -> ``stages.i.blocks.d.vertical.norm`` / ``fc1`` /
    ``fc2``, the horizontal ``.3.*`` likewise, the channel MLP ``.5.norm`` / ``.5.fn.0`` /
    ``.5.fn.3`` -> ``...channel.norm`` / ``channel.mlp.fc1`` / ``channel.mlp.fc2``. The raft
    LayerNorm affines keep the official channel order (the module applies them in it). The
    classifier (``heads``, ``classifier``) keeps its names and is reported as unused by a
    backbone. Toolkit keys pass through."""
    out = OrderedDict()
    for key, value in state_dict.items():
        m = re.match(r'^levels\.(\d+)\.fn\.(\d+)\.(.*)$', key)
        if m:
            level, index, rest = m.group(1), int(m.group(2)), m.group(3)
            if index == 0 and rest.startswith('fc.'):
                key = f'stages.{level}.embed.{rest}'
            else:
                key = _block_key(level, index, rest) or key
        out[key] = value
    return out
