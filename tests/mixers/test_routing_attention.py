"""RoutingAttention (Routing Transformer) against explicit per-cluster masked softmax attention,
its k-means state (EMA updates in training only) and its commitment loss."""
import copy
import math

import pytest
import torch

from plugins.mixers.routing_attention import RoutingAttention
from plugins.ops.global_attention import dense_attention
from plugins.registry import MODELS

from .mixer_checks import compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (1, 1), (2, 3)]


def _norm(t):
    """Layer norm without scale or bias (epsilon 1e-6), written out."""
    mean = t.mean(-1, keepdim=True)
    return (t - mean) / ((t - mean).pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()


def _membership(x, means, window):
    """(B, heads, c, N) bool: token j is among the ``window`` highest ``x_j . mu_c`` of cluster c
    (its rank, the number of tokens scoring strictly higher, is below ``window``)."""
    scores = torch.einsum('bhnd,hcd->bhcn', x, means)
    rank = (scores[..., None, :] > scores[..., :, None]).sum(-1)
    return rank < window


def routing_reference(m, x):
    """Every cluster as dense softmax attention with the mask [i in Q_c and j in K_c]; each query
    averages its clusters' outputs with the official 1e-2 in the denominator."""
    b, c, h, w = x.shape
    n, nh = h * w, m.num_heads
    qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, -1, nh, m.head_dim).permute(2, 0, 3, 1, 4)
    q = _norm(qkv[0])
    k = q if m.share_qk else _norm(qkv[1])
    v = qkv[-1]
    window = min(m.window_size or math.ceil(n / m.num_clusters), n)
    in_q, in_k = _membership(q, m.means, window), _membership(k, m.means, window)
    mask = in_q[..., :, None] & in_k[..., None, :]                          # B h c N N
    c_all = in_q.shape[2]
    q, k, v = (t[:, :, None].expand(-1, -1, c_all, -1, -1) for t in (q, k, v))
    out = dense_attention(q, k, v, mask=mask | ~in_q[..., :, None], scale=m.scale)
    out = (out * in_q[..., None]).sum(2) / (in_q.sum(2)[..., None] + m.scatter_eps)
    out = m.proj(out.transpose(1, 2).reshape(b, n, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


def _mixer(**kw):
    m = RoutingAttention(16, 2, **kw)
    randomize_(m)
    return m.eval()


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kw', [dict(num_clusters=4), dict(num_clusters=3, window_size=10),
                                dict(num_clusters=2, share_qk=True)])
def test_matches_dense_per_cluster_reference(size, kw):
    compare_with_reference(_mixer(**kw), routing_reference, torch.randn(2, 16, *size))


def test_parameter_gradients_match_reference():
    compare_parameter_grads(_mixer(num_clusters=4), routing_reference, torch.randn(2, 16, 7, 9))


def test_one_cluster_of_all_tokens_is_global_attention_over_normalised_qk():
    m = _mixer(num_clusters=1)
    x = torch.randn(2, 16, 5, 6)
    b, n = 2, 30
    qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, 3, 2, 8).permute(2, 0, 3, 1, 4)
    q, k = _norm(qkv[0]), _norm(qkv[1])
    out = dense_attention(q, k, qkv[2], scale=1.0) / (1 + 1e-2)
    out = m.proj(out.transpose(1, 2).reshape(b, n, 16)).transpose(1, 2).reshape(b, 16, 5, 6)
    torch.testing.assert_close(m(x), out, rtol=1e-5, atol=1e-5)


def test_eval_is_deterministic_and_leaves_centroids_unchanged():
    m = _mixer(num_clusters=4)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert m.auxiliary_losses == {}


def test_training_forward_routes_with_the_old_centroids_then_updates_them():
    m = _mixer(num_clusters=4)
    x = torch.randn(2, 16, 7, 9)
    expected = m(x)
    means = m.means.clone()
    m.train()
    torch.testing.assert_close(m(x), expected)
    assert not torch.allclose(m.means, means)
    assert torch.isfinite(m.means).all()


def test_ema_update_moves_centroids_towards_their_items():
    """One step with decay 0.5 from one pseudo-item per centroid: each centroid becomes the
    Laplace-smoothed average of itself and the items nearest to it."""
    m = _mixer(num_clusters=3, ema_decay=0.5, share_qk=True)
    m.train()
    x = torch.randn(1, 16, 4, 5)
    means = m.means.clone()
    m(x)
    q = _norm(m.qkv(x.flatten(2).transpose(1, 2)).view(1, 20, 2, 2, 8)[:, :, 0].transpose(1, 2))
    nearest = torch.einsum('bhnd,hcd->bhnc', q, means).argmax(-1)[0]       # h N
    for head in range(2):
        for cl in range(3):
            items = q[0, head][nearest[head] == cl]
            count = 0.5 + 0.5 * len(items)
            total = 0.5 * means[head, cl] + 0.5 * items.sum(0)
            n_all = 0.5 * 3 + 0.5 * 20
            smoothed = (count + 1e-5) / (n_all + 3e-5) * n_all
            torch.testing.assert_close(m.means[head, cl], total / smoothed, rtol=1e-5,
                                       atol=1e-6)


def test_commitment_loss_is_weighted_distance_to_nearest_centroid_and_trains_qkv():
    m = _mixer(num_clusters=4, commitment_weight=0.5)
    m.train()
    x = torch.randn(2, 16, 7, 9)
    means = m.means.clone()
    m(x)
    loss = m.auxiliary_losses['loss_commitment']
    qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(2, 63, 3, 2, 8).permute(2, 0, 3, 1, 4)
    expected = 0
    for item in (_norm(qkv[0]), _norm(qkv[1])):
        nearest = torch.einsum('bhnd,hcd->bhnc', item, means).argmax(-1)
        target = means[torch.arange(2)[None, :, None], nearest]
        expected = expected + ((item - target) ** 2).mean()
    torch.testing.assert_close(loss, 0.5 * expected)
    (grad,) = torch.autograd.grad(loss, m.qkv.weight)
    assert grad[:32].abs().sum() > 0 and grad[32:].abs().sum() == 0  # q and k rows only


def test_auxiliary_losses_are_replaced_at_each_forward():
    m = _mixer(num_clusters=2).train()
    x = torch.randn(1, 16, 3, 3)
    m(x)
    first = m.auxiliary_losses['loss_commitment']
    m(x)
    assert m.auxiliary_losses['loss_commitment'] is not first
    m.eval()
    m(x)
    assert m.auxiliary_losses == {}


def test_state_dict_holds_the_centroids():
    m = RoutingAttention(32, 4, num_clusters=8)
    state = m.state_dict()
    assert state['means'].shape == (4, 8, 8) and state['ema_count'].shape == (4, 8)
    clone = RoutingAttention(32, 4, num_clusters=8)
    clone.load_state_dict(copy.deepcopy(state))
    assert torch.equal(clone.means, m.means)


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(num_clusters=0), 'num_clusters'),
                                      (dict(window_size=0), 'window_size'),
                                      (dict(ema_decay=1.0), 'ema_decay'),
                                      (dict(commitment_weight=-1.0), 'commitment_weight')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        RoutingAttention(**args)


def test_builds_from_the_registry_with_dim_and_heads_only():
    m = MODELS.build(dict(type='RoutingAttention', dim=32, num_heads=4))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)
