"""KeyDrivenGQA: the paper's allocation rule applied per image, exact against an explicit softmax
with the head-to-group map; an image's output never depends on the rest of its batch."""
import pytest
import torch

from plugins.mixers.key_driven_gqa import VARIANTS, KeyDrivenGQA, proportional_allocation
from plugins.registry import MODELS

from .mixer_checks import compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13)]


def reference_allocation(m, k_image):
    """The code's rule for one image (k: G N d), written as its loops are."""
    norms = k_image.flatten(1).norm(dim=1)
    if m.variant in ('pgqa', 'gqa'):
        return [m.num_heads // m.num_kv_heads] * m.num_kv_heads
    if m.variant == 'kdgqa':
        weights = (norms - norms.min()) / (norms.max() - norms.min())
    elif m.variant == 'dgqa_diff':
        weights = (m.cache - norms).abs()
    else:
        weights = m.ema_beta * norms + (1 - m.ema_beta) * m.cache
    alloc = (weights / weights.sum() * m.num_heads).round().long()
    while alloc.sum() > m.num_heads:
        alloc[alloc.argmax()] -= 1
    while alloc.sum() < m.num_heads:
        alloc[alloc.argmin()] += 1
    return alloc.tolist()


def gqa_reference(m, x):
    b, c, h, w = x.shape
    n = h * w
    t = x.flatten(2).transpose(1, 2)
    q = m.q(t).view(b, n, m.num_heads, -1).transpose(1, 2)
    k = m.k(t).view(b, n, m.num_kv_heads, -1).transpose(1, 2)
    v = m.v(t).view(b, n, m.num_kv_heads, -1).transpose(1, 2)
    outs = []
    for i in range(b):
        group = [g for g, a in enumerate(reference_allocation(m, k[i])) for _ in range(a)]
        logits = q[i] @ k[i, group].transpose(-1, -2) / m.head_dim ** 0.5
        out = logits.softmax(-1) @ v[i, group]                            # H N d
        if m.variant == 'pgqa':                                            # the noise's mean
            out = out - out.flatten(1).mean(1)[:, None, None]
        outs.append(out)
    out = torch.stack(outs).transpose(1, 2).reshape(b, n, c)
    return m.proj(out).transpose(1, 2).reshape(b, c, h, w)


def _eval_mixer(variant, heads=4, groups=2):
    m = randomize_(KeyDrivenGQA(16, heads, groups, variant=variant)).eval()
    if variant.startswith('dgqa'):
        m.cache.copy_(torch.rand(groups) * 5)
    return m


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('variant', VARIANTS)
def test_matches_explicit_grouped_attention(size, variant):
    m = _eval_mixer(variant, heads=8, groups=4 if variant != 'pgqa' else 2)
    compare_with_reference(m, gqa_reference, torch.randn(2, 16, *size))


@pytest.mark.parametrize('heads,groups,alloc', [(2, 1, [2]), (4, 2, [2, 2]), (4, 2, [1, 3]),
                                                (4, 2, [0, 4])])
def test_uniform_and_gathered_groups_match_the_reference(monkeypatch, heads, groups, alloc):
    """Uniform allocations run SDPA on the key / value heads in place (grouped-query SDPA), the
    others gather them per query head: both equal the explicit softmax with the head-to-group
    map, gradients included."""
    m = randomize_(KeyDrivenGQA(16, heads, groups)).eval()
    fixed = torch.tensor(alloc)
    monkeypatch.setattr(m, 'allocation', lambda k: fixed.expand(k.shape[0], -1))
    monkeypatch.setitem(globals(), 'reference_allocation', lambda m_, k_image: alloc)
    compare_with_reference(m, gqa_reference, torch.randn(2, 16, 7, 9))


@pytest.mark.parametrize('variant', VARIANTS)
def test_image_output_ignores_the_rest_of_the_batch(variant):
    m = _eval_mixer(variant)
    x = torch.randn(3, 16, 7, 9)
    other = torch.cat([x[:1], 10 * torch.randn(2, 16, 7, 9)])
    torch.testing.assert_close(m(x)[0], m(other)[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(m(x), m(x), rtol=0, atol=0)                # deterministic


def test_kdgqa_training_allocation_is_per_image_too():
    m = randomize_(KeyDrivenGQA(16, 4, 2)).train()
    x = torch.randn(3, 16, 7, 9)
    other = torch.cat([x[:1], 10 * torch.randn(2, 16, 7, 9)])
    torch.testing.assert_close(m(x)[0], m(other)[0], rtol=0, atol=1e-6)


def test_allocation_sums_to_heads_and_may_leave_a_group_empty():
    a = proportional_allocation(torch.tensor([[0.0, 1.0, 3.0], [1.0, 1.0, 1.0],
                                              [0.0, 0.0, 0.0]]), 4)
    assert a.sum(1).tolist() == [4, 4, 4]
    assert a[0].tolist() == [0, 1, 3] and a[2].tolist() == [2, 1, 1]


def test_dgqa_cache_changes_only_in_training_every_window():
    m = randomize_(KeyDrivenGQA(16, 4, 2, variant='dgqa_ema', window_size=2))
    m.cache.zero_()
    x = torch.randn(2, 16, 5, 5)
    m.eval()(x)
    assert not m.cache.any()
    m.train()(x)
    first = m.cache.clone()
    m(x)                                                                   # step 1: no update
    torch.testing.assert_close(m.cache, first)
    m(x)                                                                   # step 2: update
    assert not torch.equal(m.cache, first)


def test_pgqa_noise_only_in_training():
    m = randomize_(KeyDrivenGQA(16, 4, 2, variant='pgqa'))
    x = torch.randn(1, 16, 5, 5)
    assert not torch.equal(m.train()(x), m(x))
    torch.testing.assert_close(m.eval()(x), m(x), rtol=0, atol=0)


def test_builds_from_dim_and_heads_only():
    for heads in (1, 2, 5):
        m = MODELS.build(dict(type='KeyDrivenGQA', dim=40, num_heads=heads))
        assert m(torch.randn(2, 40, 3, 5)).shape == (2, 40, 3, 5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='variant'):
        KeyDrivenGQA(16, 4, variant='kd')
    with pytest.raises(ValueError, match='num_kv_heads'):
        KeyDrivenGQA(16, 4, num_kv_heads=5)
    with pytest.raises(ValueError, match='divisible by num_kv_heads'):
        KeyDrivenGQA(16, 4, num_kv_heads=3, variant='gqa')
