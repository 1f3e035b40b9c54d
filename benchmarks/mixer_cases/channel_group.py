"""Benchmark case of DaViT's channel group attention; peer: timm's ``ChannelAttention``."""
from plugins.mixers.channel_group import ChannelGroupAttention

from ..peers import import_timm
from . import MixerCase

_HAS_TIMM = import_timm() is not None


def timm_channel_attention(m: ChannelGroupAttention):
    """timm DaViT ``ChannelAttention`` with our weights, on the (B, N, C) tokens."""
    from timm.models.davit import ChannelAttention
    peer = ChannelAttention(m.dim, m.num_heads, qkv_bias=True)
    peer.load_state_dict(m.state_dict())

    def run(x):
        b, c, h, w = x.shape
        return peer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
    run.parameters = peer.parameters
    return run


CASES = [
    MixerCase('ChannelGroupAttention', 'DaViT (2204.03645)',
              lambda dim, heads: ChannelGroupAttention(dim, heads), 'linear',
              'timm DaViT ChannelAttention' if _HAS_TIMM else None,
              timm_channel_attention if _HAS_TIMM else None),
]
