"""Benchmark case of ConViT's GPSA; peer: timm's ``GPSA`` (same weights), given the relative
indices of the real grid (timm derives them from sqrt(N), which only fits square maps)."""
from plugins.mixers.gated_positional import GatedPositionalAttention, relative_position_features

from ..peers import import_timm
from . import MixerCase

_HAS_TIMM = import_timm() is not None


def timm_gpsa(m: GatedPositionalAttention):
    from timm.models.convit import GPSA
    peer = GPSA(m.dim, m.num_heads)
    peer.load_state_dict(m.state_dict())

    def run(x):
        b, c, h, w = x.shape
        if peer.rel_indices.shape[1] != h * w:
            peer.rel_indices = relative_position_features(h, w)[None]
        return peer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
    run.parameters = peer.parameters
    return run


CASES = [
    MixerCase('GatedPositionalAttention', 'ConViT (2103.10697)',
              lambda dim, heads: GatedPositionalAttention(dim, heads), 'quadratic',
              'timm ConViT GPSA' if _HAS_TIMM else None, timm_gpsa if _HAS_TIMM else None,
              max_tokens=56 * 56,
              note='global attention; timm materialises N x N x 3 indices and B x heads x N x N '
                   'scores (about 10 GB at 100x152), so the case stops at 56x56'),
]
