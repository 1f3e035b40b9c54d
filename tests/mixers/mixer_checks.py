"""Shared checks of the mixer tests: a mixer against a reference, forward and input gradients."""
import copy

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
