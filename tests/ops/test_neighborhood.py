"""Neighborhood attention 2-D: the tiled op equals the dense specification (NATTEN's mask)."""
import pytest
import torch

from benchmarks.peers import import_natten
from plugins.ops import neighborhood as na_op
from plugins.ops.neighborhood import neighborhood_attention_2d, neighborhood_window_starts

from .na_reference import na_reference

CASES = [  # H, W, kernel, dilation, stride
    (13, 21, 7, 1, 1),
    (13, 21, 3, 2, 1),
    (14, 18, 7, 2, 1),
    (13, 21, 5, 1, 2),
    (13, 21, 5, 1, 5),  # blocked
    (12, 16, 4, 1, 1),  # even kernel
    (13, 21, (3, 5), (2, 1), (1, 2)),
    (5, 6, 7, 1, 1),  # map smaller than the kernel: the whole map
    (9, 9, 3, 4, 2),  # a dilation group shorter than the kernel
]


def _qkv(h, w, heads=2, d=8, dtype=torch.float32, b=2):
    return [torch.randn(b, heads, h, w, d, dtype=dtype, requires_grad=True) for _ in range(3)]


def _rpb(kernel, heads=2, dtype=torch.float32):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return torch.randn(heads, 2 * kh - 1, 2 * kw - 1, dtype=dtype, requires_grad=True)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('h,w,kernel,dilation,stride', CASES)
@pytest.mark.parametrize('with_rpb', [False, True])
def test_forward_and_input_gradients_match_dense_reference(h, w, kernel, dilation, stride, with_rpb):
    q, k, v = _qkv(h, w)
    rpb = _rpb(kernel) if with_rpb else None
    out = neighborhood_attention_2d(q, k, v, kernel, dilation, stride, rpb=rpb)
    ref = na_reference(q, k, v, kernel, dilation, stride, rpb=rpb)
    assert _rel_err(out, ref) <= 1e-5
    g = torch.randn_like(out)
    inputs = [q, k, v] + ([rpb] if with_rpb else [])
    grads = torch.autograd.grad(out, inputs, g)
    grads_ref = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(grads, grads_ref):
        assert _rel_err(a, b) <= 1e-5


def test_queries_at_the_border_see_a_full_window():
    starts = neighborhood_window_starts(10, 7)
    assert starts.tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]


def test_each_query_attends_to_exactly_kernel_squared_keys():
    h, w, kernel = 11, 12, 5
    v = torch.zeros(1, 1, h, w, h * w)
    v.view(h * w, h * w).copy_(torch.eye(h * w))  # value = one-hot of the key position
    q = torch.zeros(1, 1, h, w, 4)  # equal logits: uniform weights over the window
    out = neighborhood_attention_2d(q, q, v, kernel).reshape(h * w, h * w)
    assert torch.equal((out > 0).sum(1), torch.full((h * w,), kernel * kernel))


@pytest.mark.parametrize('tile', [(1, 1), (3, 5), (8, 8)])
def test_tile_shape_does_not_change_the_result(tile):
    q, k, v = _qkv(13, 21)
    ref = neighborhood_attention_2d(q, k, v, 7, 2, tile=(4, 8))
    assert torch.allclose(neighborhood_attention_2d(q, k, v, 7, 2, tile=tile), ref, atol=1e-6)


@pytest.mark.parametrize('dilation', [1, 2])
def test_inference_forward_matches_dense_reference(dilation):
    """Without gradients the banded path tiles differently (its fastest forward)."""
    q, k, v = _qkv(15, 22)
    rpb = _rpb(5)
    with torch.no_grad():
        out = neighborhood_attention_2d(q, k, v, 5, dilation, rpb=rpb)
        assert _rel_err(out, na_reference(q, k, v, 5, dilation, rpb=rpb)) <= 1e-5


@pytest.mark.parametrize('dilation', [1, 2])
@pytest.mark.parametrize('chunk_tiles', [3, 12])
def test_tile_ranges_split_or_joined_give_the_same_result(monkeypatch, dilation, chunk_tiles):
    """Chunks of 3 tiles cut the runs of query tiles; chunks of 12 join runs over phantom gaps."""
    monkeypatch.setattr(na_op, '_BAND_CHUNK', chunk_tiles * 16 * 6 * 12)  # 2x8 tiles, k = 5
    na_op._band_plan.cache_clear()  # tile ranges are cached with the plan
    try:
        q, k, v = _qkv(17, 23)
        rpb = _rpb(5)
        out = neighborhood_attention_2d(q, k, v, 5, dilation, rpb=rpb, tile=(2, 8))
        ref = na_reference(q, k, v, 5, dilation, rpb=rpb)
        assert _rel_err(out, ref) <= 1e-5
        g = torch.randn_like(out)
        grads = torch.autograd.grad(out, [q, k, v, rpb], g)
        for a, b in zip(grads, torch.autograd.grad(ref, [q, k, v, rpb], g)):
            assert _rel_err(a, b) <= 1e-5
    finally:
        na_op._band_plan.cache_clear()


def test_bfloat16_is_close_to_fp32_reference():
    q, k, v = _qkv(13, 21)
    rpb = _rpb(7)
    ref = na_reference(q, k, v, 7, 2, rpb=rpb)
    out = neighborhood_attention_2d(q.bfloat16(), k.bfloat16(), v.bfloat16(), 7, 2,
                                    rpb=rpb.bfloat16())
    assert out.dtype == torch.bfloat16
    assert _rel_err(out.float(), ref) <= 3e-2


def test_value_dim_may_differ_from_key_dim():
    q, k, _ = _qkv(9, 10)
    v = torch.randn(2, 2, 9, 10, 5)
    out = neighborhood_attention_2d(q, k, v, 3)
    assert _rel_err(out, na_reference(q, k, v, 3)) <= 1e-5


def test_memory_is_linear_in_tokens():
    """The saved tensors of the backward pass grow with tokens x kernel^2, not tokens^2."""
    sizes = []
    for h, w in ((32, 32), (64, 64)):
        q, k, v = _qkv(h, w, heads=1, b=1)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t,
                                                      lambda t: t):
            neighborhood_attention_2d(q, k, v, 7)
        sizes.append(sum(saved))
    assert sizes[1] <= 4.5 * sizes[0]


def test_bad_arguments_are_named():
    q, k, v = _qkv(9, 9)
    with pytest.raises(ValueError, match='stride'):
        neighborhood_attention_2d(q, k, v, 3, stride=4)
    with pytest.raises(ValueError, match='rpb'):
        neighborhood_attention_2d(q, k, v, 3, rpb=torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match='q must be'):
        neighborhood_attention_2d(q[0], k[0], v[0], 3)


natten = import_natten()


@pytest.mark.skipif(natten is None, reason='natten is not installed')
@pytest.mark.parametrize('h,w,kernel,dilation,stride', [(14, 18, 7, 2, 1), (13, 21, 5, 1, 2)])
def test_forward_equals_natten_na2d(h, w, kernel, dilation, stride):
    q, k, v = [t.detach() for t in _qkv(h, w, d=16, b=1)]
    with torch.no_grad():
        ours = neighborhood_attention_2d(q, k, v, kernel, dilation, stride, use_natten=False)
        to_last = (lambda t: t.permute(0, 2, 3, 1, 4))  # B heads H W d -> B H W heads d
        theirs = natten.na2d(to_last(q), to_last(k), to_last(v), kernel_size=kernel,
                             dilation=dilation, stride=stride).permute(0, 3, 1, 2, 4)
    assert _rel_err(ours, theirs) <= 1e-5


@pytest.mark.skipif(natten is None, reason='natten is not installed')
def test_use_natten_dispatches_to_natten_with_the_same_layout_and_result():
    q, k, v = [t.detach() for t in _qkv(9, 10, d=8, b=1)]
    with torch.no_grad():
        theirs = neighborhood_attention_2d(q, k, v, 3, 2, use_natten=True)
        ours = neighborhood_attention_2d(q, k, v, 3, 2, use_natten=False)
    assert theirs.shape == ours.shape == (1, 2, 9, 10, 8)
    assert _rel_err(theirs, ours) <= 1e-5


def test_natten_is_not_chosen_where_it_cannot_serve_the_call():
    from plugins.ops.neighborhood import natten_can_serve
    q = torch.zeros(1, 2, 9, 10, 8)
    assert not natten_can_serve(q, (3, 3), (1, 1), (1, 1), torch.zeros(2, 5, 5))  # rpb
    assert not natten_can_serve(q, (7, 7), (2, 2), (1, 1), None)  # kernel * dilation > H
    assert not natten_can_serve(torch.zeros(1, 2, 9, 10, 24), (3, 3), (1, 1), (1, 1), None)
