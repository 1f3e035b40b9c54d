"""BasedAttention: Taylor linear attention and sliding-window attention, exact against their
explicit N x N forms."""
import pytest
import torch

from plugins.mixers.based import BasedAttention
from plugins.ops import band_attention
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13)]


def based_reference(m, x):
    """A = 1 + s + s^2 / 2 over all pairs, y = A V / A 1; plus softmax in the |dy|, |dx| <= k // 2
    window; both projected and added."""
    b, c, h, w = x.shape
    n = h * w
    t = x.flatten(2).transpose(1, 2)
    q = m.proj_q(t).view(b, n, m.num_heads, -1).transpose(1, 2)
    k = m.proj_k(t).view(b, n, m.num_heads, -1).transpose(1, 2)
    v = m.proj_v(t).view(b, n, m.num_heads, -1).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / m.feature_dim ** 0.5
    a = 1 + s + s * s / 2
    linear = (a @ v) / (a.sum(-1, keepdim=True) + m.eps)
    linear = m.out_proj(linear.transpose(1, 2).reshape(b, n, c))

    qw, kw, vw = m.window_qkv(t).view(b, n, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    inside = ((ys[:, None] - ys[None]).abs() <= m.window_size[0] // 2) & \
        ((xs[:, None] - xs[None]).abs() <= m.window_size[1] // 2)
    logits = (qw @ kw.transpose(-1, -2) / m.head_dim ** 0.5).masked_fill(~inside, float('-inf'))
    window = m.window_proj((logits.softmax(-1) @ vw).transpose(1, 2).reshape(b, n, c))
    return (linear + window).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(), dict(feature_dim=4, window_size=3),
                                dict(feature_dim=8, window_size=(3, 5))])
def test_matches_explicit_taylor_and_window_attention(size, kw):
    m = randomize_(BasedAttention(16, 2, **kw))
    compare_with_reference(m, based_reference, torch.randn(2, 16, *size))


def test_window_tiles_attended_in_chunks_give_the_same_result(monkeypatch):
    # 2 tiles (of 9) per chunk: batch 2 x 2 heads x 64 queries x 12 x 12 keys each
    monkeypatch.setattr(band_attention, '_CHUNK_LOGITS', 2 * 4 * 64 * 144)
    m = randomize_(BasedAttention(16, 2, feature_dim=4, window_size=5))
    compare_with_reference(m, based_reference, torch.randn(2, 16, 19, 21))


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='BasedAttention', dim=32, num_heads=2))
    assert m(torch.randn(1, 32, 2, 3)).shape == (1, 32, 2, 3)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='odd'):
        BasedAttention(16, 2, window_size=4)
    with pytest.raises(ValueError, match='divisible'):
        BasedAttention(30, 4)
    with pytest.raises(ValueError, match='feature_dim'):
        BasedAttention(16, 2, feature_dim=0)
