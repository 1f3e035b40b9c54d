"""The chunked selective scan against the sequential recurrence; SS2D's cross scan and merge."""
import pytest
import torch

from plugins.ops import selective_scan as ss
from plugins.ops.selective_scan import (cross_merge, cross_scan, selective_scan,
                                        selective_scan_sequential)


def make_inputs(batch=2, dim=8, L=37, N=4, groups=2, dtype=torch.float64, dt_scale=1.0):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(u=r(batch, dim, L), delta=r(batch, dim, L) * dt_scale,
                A=-torch.exp(r(dim, N)), B=r(batch, groups, N, L), C=r(batch, groups, N, L),
                D=r(dim), z=r(batch, dim, L), delta_bias=r(dim) * 0.1, delta_softplus=True)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('L,chunk', [(37, 8), (64, 64), (1, 16), (100, 7)])
def test_chunked_scan_equals_sequential_scan(L, chunk):
    kw = make_inputs(L=L)
    y, h = selective_scan(**kw, chunk_size=chunk, return_last_state=True)
    y_ref, h_ref = selective_scan_sequential(**kw, return_last_state=True)
    assert rel(y, y_ref) < 1e-5 and rel(h, h_ref) < 1e-5


def test_input_gradients_equal_those_of_sequential_scan():
    kw = make_inputs(L=45, dtype=torch.float32)
    names = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')
    a = {k: (v.double().requires_grad_() if k in names else v) for k, v in kw.items()}
    b = {k: (v.requires_grad_() if k in names else v) for k, v in kw.items()}
    y_ref = selective_scan_sequential(**a)
    y = selective_scan(**b, chunk_size=8)
    g = torch.randn_like(y_ref)
    gr = torch.autograd.grad(y_ref, [a[k] for k in names], g)
    gs = torch.autograd.grad(y, [b[k] for k in names], g.float())
    for k, x, r in zip(names, gs, gr):
        assert rel(x, r) < 1e-5, k


def test_strong_decays_shrink_the_chunk_instead_of_overflowing():
    kw = make_inputs(L=64, dt_scale=30.0)   # softplus(delta) up to ~100: |S| >> 88 in one chunk
    y = selective_scan(**kw, chunk_size=64)
    assert torch.isfinite(y).all()
    assert rel(y, selective_scan_sequential(**kw)) < 1e-5


def test_long_sequences_run_in_checkpointed_blocks(monkeypatch):
    monkeypatch.setattr(ss, '_BLOCK_ELEMENTS', 2 * 8 * 4 * 16)   # blocks of 16 tokens
    kw = make_inputs(L=70, dtype=torch.float32)
    u = kw.pop('u').requires_grad_()
    y = selective_scan(u, **kw, chunk_size=8)
    y_ref = selective_scan_sequential(u.double(), **{k: (v.double() if torch.is_tensor(v) else v)
                                                     for k, v in kw.items()})
    assert rel(y, y_ref) < 1e-5
    (g,) = torch.autograd.grad(y.sum(), u)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), u)
    assert rel(g, g_ref) < 1e-5


def test_bf16_inputs_are_scanned_in_fp32():
    kw = make_inputs(L=30, dtype=torch.float32)
    y16 = selective_scan(**{k: (v.bfloat16() if torch.is_tensor(v) else v) for k, v in kw.items()})
    assert y16.dtype == torch.bfloat16
    y = selective_scan(**kw)
    assert ((y16.float() - y).norm() / y.norm()).item() < 3e-2


def test_cross_scan_orders_and_merge_is_its_adjoint():
    x = torch.arange(6.).view(1, 1, 2, 3)
    xs = cross_scan(x)
    assert xs[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert xs[0, 1, 0].tolist() == [0, 3, 1, 4, 2, 5]
    assert xs[0, 2, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert xs[0, 3, 0].tolist() == [5, 2, 4, 1, 3, 0]
    ys = torch.randn(1, 4, 1, 6)
    # <cross_scan(x), ys> == <x, cross_merge(ys)>
    torch.testing.assert_close((cross_scan(x) * ys).sum(), (x.flatten(2) * cross_merge(ys, 2, 3)).sum())


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')  # the traced Python loop
def test_a_flop_count_traces_the_scan_as_one_opaque_node(monkeypatch):
    """The FLOP counter's tracer keeps every intermediate it records: the scan must not be
    traced op by op there (its traceable doubling scan held 19 GB for Mamba-YOLO-T at 640);
    other tracers (torch.jit.trace, export, ONNX) still record the traceable scan."""
    from plugins.mixers.ss2d import SS2DMixer
    from plugins.utils.flops import count_flops

    mixer = SS2DMixer(16).eval()
    x = torch.randn(1, 16, 9, 11)
    counted = count_flops(mixer, (x, ))

    def traceable_scan(*args, **kwargs):
        raise AssertionError('the traceable scan ran')

    monkeypatch.setattr(ss, '_scan_block_traceable', traceable_scan)
    assert count_flops(mixer, (x, )) == counted > mixer.in_proj.weight.numel() * 9 * 11
    with pytest.raises(AssertionError, match='traceable scan ran'), torch.no_grad():
        torch.jit.trace(mixer, (x, ), check_trace=False)
