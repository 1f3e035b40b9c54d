"""First-order linear recurrences ``h_t = a_t h_{t-1} + b_t`` computed in parallel.

Gated and decayed recurrences (RAT's chunk scan, Lightning Attention's inter-block state) are this
recurrence with ``a`` a gate or a decay. :func:`linear_recurrence` runs it as a Hillis-Steele
doubling scan: ``ceil(log2 T)`` steps over all positions at once, each combining a position with
the one ``2^s`` before it (``(A, B)`` pairs compose as ``(A_t A_{t-o}, A_t B_{t-o} + B_t)``). Only
products of the ``a`` values occur, never their inverses, so it is exact and stable for any gate
in ``[0, 1]`` (a cumulative-sum formulation would divide by vanishing products). Cost
``O(T log T)`` elementwise work and memory, autograd-friendly; no Python loop over positions.
"""
import torch

__all__ = ['linear_recurrence']


def _shift(x: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``x`` moved ``offset`` steps later along ``dim``; the first ``offset`` slots are zeros."""
    n = x.shape[dim]
    zeros = x.new_zeros(x.shape[:dim] + (offset,) + x.shape[dim + 1:])
    return torch.cat([zeros, x.narrow(dim, 0, n - offset)], dim=dim)


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """All states of ``h_t = a_t h_{t-1} + b_t`` with ``h_{-1} = 0``, along ``dim``.

    Args:
        a: the multipliers, broadcastable to ``b`` (its size along ``dim`` must equal ``b``'s).
        b: the inputs.
        dim: the time axis.

    Returns:
        ``h`` with the shape of ``b``.
    """
    dim = dim % b.dim()
    if a.dim() != b.dim() or a.shape[dim] != b.shape[dim]:
        raise ValueError(f'linear_recurrence: a {tuple(a.shape)} must have b\'s rank and length '
                         f'{b.shape[dim]} along dim {dim}; b is {tuple(b.shape)}')
    n = b.shape[dim]
    offset = 1
    while offset < n:
        # h_t = A_t h_{t-o} + B_t and h_{t-o} = A_{t-o} h_{t-2o} + B_{t-o}; before t = 0, h = 0
        b = b + a * _shift(b, offset, dim)
        a = a * _shift(a, offset, dim)
        offset *= 2
    return b
