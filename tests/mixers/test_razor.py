"""RazorAttention: the compression's exactness properties (all-retrieval equals the global mixer;
the window + compensation form equals its dense masked reference) and the head selection."""
import math

import pytest
import torch

from plugins.mixers.global_attention import GlobalSelfAttention
from plugins.mixers.razor import RazorAttention, compress_model, retrieval_head_scores
from plugins.ops import band_attention
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_, rel_err

SIZES = [(7, 9), (11, 13)]


def razor_reference(m, x):
    """Non-retrieval heads: softmax over the window keys plus one token per query, the mean key /
    value outside its window with logit bias log m (Eq. 4-5); retrieval heads: full softmax."""
    b, c, h, w = x.shape
    n = h * w
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, m.num_heads, -1) \
        .permute(2, 0, 3, 1, 4)                                         # B heads N d
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    inside = ((ys[:, None] - ys[None]).abs() <= m.window_size[0] // 2) & \
        ((xs[:, None] - xs[None]).abs() <= m.window_size[1] // 2)      # N N
    outside = (~inside).to(x.dtype)
    count = outside.sum(1)                                              # m per query
    k_hat = (outside @ k) / count.clamp_min(1)[:, None]
    v_hat = (outside @ v) / count.clamp_min(1)[:, None]
    scale = m.head_dim ** -0.5
    logits = (q @ k.transpose(-1, -2)) * scale
    local = logits.masked_fill(~inside, float('-inf'))
    extra = (q * k_hat).sum(-1, keepdim=True) * scale + torch.log(count)[:, None]
    attn = torch.cat([local, extra], -1).softmax(-1)
    compressed = attn[..., :-1] @ v + attn[..., -1:] * v_hat
    full = logits.softmax(-1) @ v
    keep = m.retrieval_mask[None, :, None, None]
    out = torch.where(keep, full, compressed)
    return m.proj(out.transpose(1, 2).reshape(b, n, c)).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('heads,window', [([1], 3), ([], (3, 5)), ([0, 2], 5)])
def test_window_and_compensation_match_dense_reference(size, heads, window):
    m = randomize_(RazorAttention(16, 4, window, retrieval_heads=heads))
    compare_with_reference(m, razor_reference, torch.randn(2, 16, *size))


def test_tiles_attended_in_chunks_give_the_same_result(monkeypatch):
    # 3 tiles (of 9) per chunk: batch 2 x 2 heads x 64 queries x 10 x 10 keys each
    monkeypatch.setattr(band_attention, '_CHUNK_LOGITS', 3 * 4 * 64 * 100)
    m = randomize_(RazorAttention(16, 2, 3, retrieval_heads=[]))
    compare_with_reference(m, razor_reference, torch.randn(2, 16, 19, 21))


def test_all_retrieval_heads_equal_the_global_mixer():
    glob = randomize_(GlobalSelfAttention(16, 4))
    razor = RazorAttention.from_global(glob, [0, 1, 2, 3])
    x = torch.randn(2, 16, 7, 9)
    assert rel_err(razor(x), glob(x)) < 1e-6


def test_window_covering_the_map_equals_global_attention():
    glob = randomize_(GlobalSelfAttention(16, 4))
    razor = RazorAttention.from_global(glob, [], window_size=9)
    x = torch.randn(2, 16, 4, 5)                                         # m = 0 everywhere
    assert rel_err(razor(x), glob(x)) < 1e-6


def test_scores_rank_the_head_the_window_cannot_replace_first():
    """A head whose queries and keys are scaled up attends sharply to specific far tokens: the mean
    token cannot stand in for it."""
    glob = randomize_(GlobalSelfAttention(16, 4), 0.1)
    with torch.no_grad():
        glob.qkv.weight[4:8] *= 30                                      # query of head 1
        glob.qkv.weight[20:24] *= 30                                    # key of head 1
    scores = retrieval_head_scores(glob, [torch.randn(2, 16, 9, 9)], window_size=3)
    assert scores.argmax() == 1


def test_compress_model_replaces_every_global_mixer_and_keeps_the_ratio():
    model = torch.nn.Sequential(randomize_(GlobalSelfAttention(16, 4)),
                                randomize_(GlobalSelfAttention(16, 2)))
    x = torch.randn(2, 16, 9, 11)
    reference = model(x)
    chosen = compress_model(model, [x], retrieval_ratio=0.5, window_size=3)
    assert all(isinstance(m, RazorAttention) for m in model)
    assert sum(len(h) for h in chosen.values()) == math.ceil(0.5 * 6)
    assert [m.retrieval_heads for m in model] == [chosen['0'], chosen['1']]
    assert not torch.allclose(model(x), reference)
    compress_model(model, [x], retrieval_ratio=1.0, window_size=3)
    assert rel_err(model(x), reference) < 1e-6


def test_builds_from_dim_and_heads_only():
    m = MODELS.build(dict(type='RazorAttention', dim=32, num_heads=2))
    assert m.retrieval_heads == [0]
    assert m(torch.randn(1, 32, 13, 17)).shape == (1, 32, 13, 17)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='odd'):
        RazorAttention(16, 2, window_size=4)
    with pytest.raises(ValueError, match='retrieval_heads'):
        RazorAttention(16, 2, retrieval_heads=[2])
    with pytest.raises(TypeError, match='GlobalSelfAttention'):
        RazorAttention.from_global(torch.nn.Linear(4, 4), [0])
    with pytest.raises(ValueError, match='no GlobalSelfAttention'):
        compress_model(torch.nn.Sequential(torch.nn.Identity()), [])
