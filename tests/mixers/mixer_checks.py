"""Shared checks of the mixer tests: a mixer against a reference, forward and input gradients."""
import copy

import pytest
import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor, norm: str = 'max') -> float:
    """max |actual - expected| / max |expected| (in float64); ``norm='fro'``: the ratio of the
    Frobenius norms, for low precision, where a ReLU or a clamp may flip a few elements."""
    a, e = actual.double(), expected.double()
    if norm == 'fro':
        return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()
    return ((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item()


def compare_with_reference(mixer, reference, x, rtol=1e-5, grad=True, ref_dtype=torch.float64,
                           rtol_grad=None, norm='max'):
    """Run ``mixer(x)`` and ``reference(mixer_copy, x)`` with ``mixer_copy`` in ``ref_dtype``.

    Checks the outputs and the gradients w.r.t. ``x`` for a random upstream gradient; returns the
    two relative errors.
    """
    ref_mixer = copy.deepcopy(mixer).to(ref_dtype)
    x1 = x.detach().clone().requires_grad_(grad)
    x2 = x.detach().to(ref_dtype).requires_grad_(grad)
    y1 = mixer(x1)
    y2 = reference(ref_mixer, x2)
    assert y1.shape == x.shape[:1] + y1.shape[1:] and y1.shape == y2.shape
    err = rel_err(y1, y2, norm)
    assert err <= rtol, f'forward relative error {err:.2e} > {rtol:.0e}'
    if not grad:
        return err, None
    g = torch.randn_like(y2)
    (gx1,) = torch.autograd.grad(y1, x1, g.to(y1.dtype))
    (gx2,) = torch.autograd.grad(y2, x2, g)
    gerr = rel_err(gx1, gx2, norm)
    rtol_grad = rtol if rtol_grad is None else rtol_grad
    assert gerr <= rtol_grad, f'input-gradient relative error {gerr:.2e} > {rtol_grad:.0e}'
    return err, gerr


def compare_bf16(mixer, x, rtol=5e-2):
    """The mixer in bf16 against itself in fp32 (forward and input gradient), relative error in
    the Frobenius norm."""
    m32 = copy.deepcopy(mixer).float()
    m16 = copy.deepcopy(mixer).to(torch.bfloat16)
    return compare_with_reference(m16, lambda m, inp: m32(inp.float()), x.to(torch.bfloat16),
                                  rtol=rtol, ref_dtype=torch.float32, norm='fro')


def randomize_(module: torch.nn.Module, std: float = 0.2) -> torch.nn.Module:
    """Fill every parameter with noise, so that no zero init hides a term of the formula."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * std)
    return module


def compare_parameter_grads(mixer, reference, x, rtol=1e-5, ref_dtype=torch.float64):
    """Gradients of every parameter of ``mixer(x)`` against those of ``reference(mixer_copy, x)``
    (``mixer_copy`` in ``ref_dtype``) for one random upstream gradient; returns the worst relative
    error over the parameters."""
    ref_mixer = copy.deepcopy(mixer).to(ref_dtype)
    y1 = mixer(x)
    y2 = reference(ref_mixer, x.to(ref_dtype))
    g = torch.randn_like(y2)
    names = [n for n, p in mixer.named_parameters() if p.requires_grad]
    p1 = dict(mixer.named_parameters())
    p2 = dict(ref_mixer.named_parameters())
    g1 = torch.autograd.grad(y1, [p1[n] for n in names], g.to(y1.dtype), allow_unused=True)
    g2 = torch.autograd.grad(y2, [p2[n] for n in names], g, allow_unused=True)
    worst = 0.0
    for name, a, b in zip(names, g1, g2):
        assert (a is None) == (b is None), f'{name}: gradient in only one of mixer and reference'
        if a is not None:
            err = rel_err(a, b)
            assert err <= rtol, f'{name}: parameter-gradient relative error {err:.2e} > {rtol:.0e}'
            worst = max(worst, err)
    return worst


def assert_second_backward_refused(mixer, x):
    """A mixer whose hand-written backward consumes its saved buffers refuses a second backward
    through the same graph with a clear error."""
    y = mixer(x.requires_grad_()).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='once'):
        y.backward()
