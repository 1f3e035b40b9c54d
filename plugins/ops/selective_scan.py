"""Selective scan (the S6 recurrence of Mamba) in pure PyTorch, chunked, plus SS2D's cross scan.

Mamba ("Mamba: Linear-Time Sequence Modeling with Selective State Spaces", Gu & Dao,
arXiv 2312.00752, Sec. 3.2, Algorithm 2) discretises ``h' = A h + B u`` per step with a
data-dependent step ``delta``: ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``,
``y_t = C_t . h_t + D u_t``, optionally gated ``y * silu(z)``. The CUDA kernel of Mamba / VMamba
(``selective_scan_fn``) has no CPU path; :func:`selective_scan_sequential` is the reference
(``selective_scan_ref`` semantics, one step per token) and :func:`selective_scan` the fast path.

The fast path cuts the sequence into chunks of T tokens. Inside a chunk, with the cumulative
log-decay ``S_t = sum_{s<=t} delta_s A`` (A < 0), the state is
``h_t = exp(S_t) (h_0 + sum_{s<=t} exp(-S_s) delta_s B_s u_s)``: a cumulative sum, computed for all
chunks at once. A short sequential pass carries the state across chunk boundaries (L / T steps,
not L). T halves where a chunk's decay would overflow ``exp(-S)`` in fp32, so the result is exact
whatever the decays. That choice reads the decays on the host, which a graph tracer
(``torch.export``, ONNX) cannot record: there each chunk's states come from the doubling scan of
:func:`~plugins.ops.recurrence.linear_recurrence` instead (products of decays only, never their
inverses: exact and finite for any decay, no data-dependent branch; ``log2 T`` passes), and so do
the states carried across chunks. Long sequences run in blocks of chunks under activation checkpointing, so
memory stays bounded: ``O(block * D * N)``, not ``O(L * D * N)``. Computed in fp32 (as the CUDA
kernel), returned in the input dtype. Cost ``O(L D N)``.

SS2D (VMamba, arXiv 2401.10166; Mamba-YOLO, arXiv 2406.05835) scans a map in four
orders: row-major, column-major and both reversed (:func:`cross_scan`), and sums the four outputs
back on the grid (:func:`cross_merge`).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .recurrence import linear_recurrence
from .utils import flop_counting, graph_tracing, untraced_call

_MAX_LOG_DECAY = 60.0      # |S| inside a chunk stays below this: exp(+-S) is finite in fp32
_BLOCK_ELEMENTS = 1 << 18  # elements of a (B, D, T_block, N) tensor per block: cache-sized


def _grouped_bc(m: torch.Tensor, dim: int) -> torch.Tensor:
    """B or C, (batch, N, L) or grouped (batch, G, N, L), as (batch, G, L, N)."""
    if m.dim() == 3:
        m = m.unsqueeze(1)
    if dim % m.shape[1]:
        raise ValueError(f'selective_scan: {dim} channels cannot be split into {m.shape[1]} '
                         f'groups of B/C')
    return m.transpose(-1, -2)


def _expand_bc(m: torch.Tensor, batch: int, dim: int) -> torch.Tensor:
    """B or C as (batch, D, L, N) (for the sequential reference)."""
    m = _grouped_bc(m, dim).unsqueeze(2)                                  # b G 1 L N
    g = m.shape[1]
    return m.expand(batch, g, dim // g, *m.shape[-2:]).reshape(batch, dim, *m.shape[-2:])


def _scan_block(dt: torch.Tensor, du: torch.Tensor, A: torch.Tensor, Bm: torch.Tensor,
                Cm: torch.Tensor, h0: torch.Tensor, chunk: int):
    """One block of tokens, channels in groups. dt, du: (b, G, Dg, L); A: (G, Dg, N);
    Bm, Cm: (b, G, L, N); h0: (b, G, Dg, N). Returns y (b, G, Dg, L) and the last state."""
    if graph_tracing():
        return _scan_block_traceable(dt, du, A, Bm, Cm, h0, chunk)
    b, G, Dg, L = dt.shape
    N = A.shape[-1]
    a_max = float(A.detach().abs().amax())
    T = max(1, min(chunk, L))
    while True:   # the largest T <= chunk whose per-chunk log-decay stays below the bound
        pad = (-L) % T
        cum_dt = F.pad(dt, (0, pad)).view(b, G, Dg, -1, T).cumsum(-1)      # b G Dg nC T
        if T == 1 or float(cum_dt[..., -1].detach().abs().amax()) * a_max <= _MAX_LOG_DECAY:
            break
        T //= 2
    nC = cum_dt.shape[3]
    S = cum_dt.unsqueeze(-1) * A[:, :, None, None, :]                     # b G Dg nC T N
    Bc = F.pad(Bm, (0, 0, 0, pad)).view(b, G, 1, nC, T, N)
    Cc = F.pad(Cm, (0, 0, 0, pad)).view(b, G, 1, nC, T, N)
    du_c = F.pad(du, (0, pad)).view(b, G, Dg, nC, T, 1)
    # without autograd the same products run in place, with 1 / E for exp(-S) (|S| <= 60 keeps
    # it finite): fewer passes over the (b, G, Dg, nC, T, N) tensors and no new ones
    in_place = T > 1 and not (torch.is_grad_enabled() and any(
        t.requires_grad for t in (dt, du, A, Bm, Cm, h0)))
    E = S.exp_() if in_place else torch.exp(S)
    if T == 1:    # one step per chunk: nothing to accumulate, nothing to overflow
        acc = Bc * du_c                                                    # the state from 0
        last = acc[..., -1, :]
    elif in_place:
        acc = torch.reciprocal(E).mul_(Bc).mul_(du_c).cumsum_(dim=4)
        last = E[..., -1, :] * acc[..., -1, :]
    else:         # acc_t = sum_{s<=t} exp(-S_s) delta_s B_s u_s; the state from 0 is exp(S_t) acc_t
        # exp(-S), not 1 / E: the gradient of 1 / E is 1 / E^2, which overflows
        acc = torch.cumsum(torch.exp(-S) * Bc * du_c, dim=4)
        last = E[..., -1, :] * acc[..., -1, :]
    decay_end = E[..., -1, :]                                              # b G Dg nC N
    h = h0
    starts = []
    for c in range(nC):                                                    # L / T steps
        starts.append(h)
        h = decay_end[:, :, :, c] * h + last[:, :, :, c]
    h_in = torch.stack(starts, dim=3).unsqueeze(4)                         # b G Dg nC 1 N
    # y_t = sum_n C_tn h_tn, h_t = exp(S_t) (h_in + acc_t)  (or acc_t + exp(S_t) h_in at T = 1)
    if T == 1:
        y = (Cc * (acc + E * h_in)).sum(-1)
    elif in_place:
        y = acc.add_(h_in).mul_(E).mul_(Cc).sum(-1)
    else:
        y = ((Cc * E) * (acc + h_in)).sum(-1)                              # b G Dg nC T
    return y.view(b, G, Dg, nC * T)[..., :L], h


def _scan_block_traceable(dt: torch.Tensor, du: torch.Tensor, A: torch.Tensor, Bm: torch.Tensor,
                          Cm: torch.Tensor, h0: torch.Tensor, chunk: int):
    """:func:`_scan_block` without data-dependent branches or loops (for graph tracers): chunks of
    ``T = chunk`` tokens, ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t`` inside each chunk by
    the doubling scan (from a zero state), the chunks' start states by a second scan over the
    chunk ends (the block's ``h0`` entering the first), then ``h_t += exp(S_t) h_start``."""
    b, G, Dg, L = dt.shape
    N = A.shape[-1]
    T = max(1, min(chunk, L))
    pad = (-L) % T
    nC = (L + pad) // T
    dt_c = F.pad(dt, (0, pad)).view(b, G, Dg, nC, T, 1)
    decay = torch.exp(dt_c * A[:, :, None, None, :])                     # b G Dg nC T N
    x = F.pad(du, (0, pad)).view(b, G, Dg, nC, T, 1) * \
        F.pad(Bm, (0, 0, 0, pad)).view(b, G, 1, nC, T, N)
    acc = linear_recurrence(decay, x, dim=4)                              # states from 0
    decay_to = torch.exp(dt_c.cumsum(4) * A[:, :, None, None, :])         # exp(S_t) <= 1
    ends = acc[..., -1, :]                                                # b G Dg nC N
    end_decay = decay_to[..., -1, :]
    first = ends[:, :, :, :1] + end_decay[:, :, :, :1] * h0.unsqueeze(3)  # h0 enters chunk 0
    h_end = linear_recurrence(end_decay, torch.cat([first, ends[:, :, :, 1:]], dim=3), dim=3)
    h_start = torch.cat([h0.unsqueeze(3), h_end[:, :, :, :-1]], dim=3).unsqueeze(4)
    y = (F.pad(Cm, (0, 0, 0, pad)).view(b, G, 1, nC, T, N) * (acc + decay_to * h_start)).sum(-1)
    return y.reshape(b, G, Dg, nC * T)[..., :L], h_end[:, :, :, -1]


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: Optional[torch.Tensor] = None,
                   z: Optional[torch.Tensor] = None, delta_bias: Optional[torch.Tensor] = None,
                   delta_softplus: bool = False, chunk_size: int = 32,
                   return_last_state: bool = False):
    """Selective scan with ``selective_scan_fn``'s arguments (real A, variable B and C).

    Args:
        u, delta: (batch, D, L).
        A: (D, N), real (negative for a decaying state).
        B, C: (batch, N, L) or (batch, G, N, L), the group g serving channels
            ``[g D/G, (g+1) D/G)`` (SS2D: one group per scan direction).
        D: (D,) skip; z: (batch, D, L) gate ``* silu(z)``; delta_bias: (D,);
        delta_softplus: apply softplus to ``delta + delta_bias``.
        chunk_size: tokens per chunk T (halved automatically where decays would overflow).
        return_last_state: also return the final state (batch, D, N).

    Under a FLOP counter's trace the scan is one opaque node (its element-wise work counts
    nothing there either; Mamba-YOLO's GFLOPs leave it out as the paper's do).
    """
    if flop_counting():
        return untraced_call(selective_scan, u, delta, A, B, C, D, z, delta_bias,
                             delta_softplus, chunk_size, return_last_state)
    dtype = u.dtype
    batch, dim, L = u.shape
    if A.is_complex():
        raise NotImplementedError('selective_scan: complex A is not supported')
    uf, dt = u.float(), delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    Bm, Cm = _grouped_bc(B.float(), dim), _grouped_bc(C.float(), dim)
    G = Bm.shape[1]
    if Cm.shape[1] != G:
        raise ValueError(f'selective_scan: B has {G} groups, C has {Cm.shape[1]}')
    N = A.shape[-1]
    Ag = A.float().view(G, dim // G, N)
    dt_g = dt.view(batch, G, dim // G, L)
    du_g = (dt * uf).view(batch, G, dim // G, L)
    h = uf.new_zeros(batch, G, dim // G, N)
    per_token = batch * dim * N
    block = max(chunk_size, (_BLOCK_ELEMENTS // max(per_token, 1)) // chunk_size * chunk_size)
    use_ckpt = torch.is_grad_enabled() and L > block
    ys = []
    for start in range(0, L, block):
        sl = slice(start, min(L, start + block))
        args = (dt_g[..., sl], du_g[..., sl], Ag, Bm[:, :, sl], Cm[:, :, sl], h)
        if use_ckpt:
            y, h = checkpoint(_scan_block, *args, chunk_size, use_reentrant=False)
        else:
            y, h = _scan_block(*args, chunk_size)
        ys.append(y)
    y = (torch.cat(ys, dim=-1) if len(ys) > 1 else ys[0]).reshape(batch, dim, L)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype)
    return (y, h.reshape(batch, dim, N)) if return_last_state else y


def selective_scan_sequential(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                              B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor] = None,
                              z: Optional[torch.Tensor] = None,
                              delta_bias: Optional[torch.Tensor] = None,
                              delta_softplus: bool = False, return_last_state: bool = False):
    """The reference: the recurrence one token at a time (``selective_scan_ref`` semantics)."""
    dtype = u.dtype
    batch, dim, L = u.shape
    uf, dt = u.float(), delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    Bm, Cm = _expand_bc(B.float(), batch, dim), _expand_bc(C.float(), batch, dim)
    dA = torch.exp(dt.unsqueeze(-1) * A.float()[:, None, :])               # b D L N
    dBu = (dt * uf).unsqueeze(-1) * Bm
    h = uf.new_zeros(batch, dim, A.shape[-1])
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append((h * Cm[:, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype)
    return (y, h) if return_last_state else y


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """SS2D's four scan orders of a map: (B, C, H, W) -> (B, 4, C, H*W).

    0: row-major; 1: column-major; 2, 3: the same reversed.
    """
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    two = torch.stack([rows, cols], dim=1)
    return torch.cat([two, two.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Sum the four scans back in row-major order: (B, 4, C, H*W) -> (B, C, H*W)."""
    B, _, C, L = ys.shape
    two = ys[:, :2] + ys[:, 2:].flip(-1)
    cols = two[:, 1].view(B, C, W, H).transpose(2, 3).reshape(B, C, L)
    return two[:, 0] + cols
