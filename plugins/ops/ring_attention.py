"""Ring self-attention: exact global attention over a token sequence split across processes.

Sequence parallelism as in Li et al., "Sequence Parallelism: Long Sequence Training from System
Perspective" (arXiv 2105.13120, ring self-attention), with the online-softmax merge of Liu et al.,
"Ring Attention with Blockwise Transformers for Near-Infinite Context" (arXiv 2310.01889): rank
``r`` of a process group of ``P`` ranks holds the ``r``-th contiguous chunk of the tokens (query,
key and value rows). The key / value chunks travel around the ring (rank ``r`` sends to ``r + 1``
and receives from ``r - 1``, ``torch.distributed.batch_isend_irecv``), so after ``P`` steps every
query chunk has met every key chunk. Each step gives a partial result ``(o_b, lse_b)`` (the block's
softmax output and the log-sum-exp of its logits per query), merged exactly by the log-sum-exp
rule (Milakov & Gimelshein, arXiv 1805.02867; Liu et al., Sec. 3)::

    lse = log(exp(lse_a) + exp(lse_b)),  o = exp(lse_a - lse) o_a + exp(lse_b - lse) o_b.

The backward pass is exact too (FlashAttention's backward, Dao et al., arXiv 2205.14135, Alg. 2,
applied per block with the *global* ``o`` and ``lse``): with ``P = exp(S - lse)`` and ``D =
rowsum(dO * O)``, ``dV_j = P^T dO``, ``dS = P * (dO V_j^T - D)``, ``dQ = sum_j dS K_j * scale``,
``dK_j = dS^T Q * scale``. Each key / value chunk travels around the ring once more together with
its gradient accumulators and arrives home after ``P`` hops.

Per rank: ``O(N^2 d / P)`` time, ``O(N d / P)`` memory (chunks, their gradients and one chunk in
flight); it sends ``P - 1`` key / value chunks in the forward pass, ``P`` chunks with their
gradients in the backward pass. Token counts need not divide by ``P``
(:func:`shard_sizes`: the first ``N mod P`` ranks hold one token more). Works on any backend with
point-to-point sends: gloo on CPU, NCCL on GPU. With one process (or no process group) the op *is*
:func:`global_attention` (SDPA), the one-process op.

Block kernel: on CPU, PyTorch's fused flash-attention kernel, which returns the log-sum-exp
(``aten._scaled_dot_product_flash_attention_for_cpu``, memory ``O(n d)``); elsewhere (and as its
specification) the same math written out, queries in blocks of :data:`QUERY_BLOCK` so that the
logits never exceed ``QUERY_BLOCK x n`` per head.

:func:`sequence_parallel_attention` is the attention of a model trained with sequence
parallelism: the processes hold the same images, each projects and attends for its chunk of the
tokens, and the outputs are all-gathered.
"""
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from .global_attention import global_attention

__all__ = ['shard_sizes', 'ring_attention', 'token_chunk', 'gather_chunks',
           'sequence_parallel_attention']

QUERY_BLOCK = 1024  # queries per block of the written-out kernel (bounds its logits' memory)
GRADIENT_GROUPS = 4  # the backward kernel runs on a quarter of the (batch x heads) at a time


def shard_sizes(num_tokens: int, world_size: int) -> List[int]:
    """Tokens of each rank's contiguous chunk: ``N // P``, one more on the first ``N % P`` ranks."""
    base, extra = divmod(num_tokens, world_size)
    return [base + (rank < extra) for rank in range(world_size)]


def _rank_and_world(group) -> Tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _global_rank(group, rank: int) -> int:
    return rank if group is None or group is dist.group.WORLD else dist.get_global_rank(group, rank)


# ---- the block kernel: softmax attention of the local queries over one key / value chunk ------
def _use_fused_cpu_kernel(q: torch.Tensor) -> bool:
    return (q.device.type == 'cpu' and q.dtype in (torch.float32, torch.float64)
            and hasattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu'))


def block_attention(q, k, v, scale: float, fused: Optional[bool] = None):
    """``(softmax(q k^T * scale) v, logsumexp(q k^T * scale))`` for ``q (..., n, d)``,
    ``k (..., m, d)``, ``v (..., m, e)``: outputs ``(..., n, e)`` and ``(..., n)``."""
    if _use_fused_cpu_kernel(q) if fused is None else fused:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, scale=scale)
    outs, lses = [], []
    for start in range(0, q.shape[-2], QUERY_BLOCK):
        logits = torch.matmul(q[..., start:start + QUERY_BLOCK, :], k.transpose(-2, -1)) * scale
        lse = torch.logsumexp(logits, dim=-1)
        outs.append(torch.matmul(torch.exp(logits - lse.unsqueeze(-1)), v))
        lses.append(lse)
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


def block_attention_backward(dout, q, k, v, out, lse, scale: float, fused: Optional[bool] = None):
    """Gradients ``(dq, dk, dv)`` of one block given the *merged* output ``out`` and ``lse`` of
    the queries (FlashAttention's backward, arXiv 2205.14135, Alg. 2, lines 13-21)."""
    if _use_fused_cpu_kernel(q) if fused is None else fused:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout, q, k, v, out, lse, 0.0, False, scale=scale)
    delta = (dout * out).sum(dim=-1, keepdim=True)  # D = rowsum(dO * O)
    dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for start in range(0, q.shape[-2], QUERY_BLOCK):
        rows = slice(start, start + QUERY_BLOCK)
        logits = torch.matmul(q[..., rows, :], k.transpose(-2, -1)) * scale
        prob = torch.exp(logits - lse[..., rows].unsqueeze(-1))  # P = exp(S - lse)
        dv += torch.matmul(prob.transpose(-2, -1), dout[..., rows, :])
        dprob = torch.matmul(dout[..., rows, :], v.transpose(-2, -1))  # dP = dO V^T
        dlogits = prob * (dprob - delta[..., rows, :])  # dS = P * (dP - D)
        dq[..., rows, :] = torch.matmul(dlogits, k) * scale
        dk += torch.matmul(dlogits.transpose(-2, -1), q[..., rows, :]) * scale
    return dq, dk, dv


def add_block_gradients(dq, dk, dv, dout, q, k, v, out, lse, scale: float,
                        fused: Optional[bool] = None) -> None:
    """Add one block's gradients to the accumulators ``dq, dk, dv`` (in place), running the
    backward kernel on :data:`GRADIENT_GROUPS` groups of the (batch x heads) rows in turn, so
    that its outputs and buffers never exceed a fraction of a chunk (all tensors contiguous)."""
    tensors = [t.view(1, -1, *t.shape[-2:]) for t in (dq, dk, dv, dout, q, k, v, out)]
    tensors.append(lse.view(1, -1, lse.shape[-1]))
    rows = tensors[0].shape[1]
    step = -(-rows // GRADIENT_GROUPS)
    for start in range(0, rows, step):
        gq, gk, gv, *inputs = (t[:, start:start + step] for t in tensors)
        grads = block_attention_backward(*inputs, scale, fused=fused)
        gq += grads[0]
        gk += grads[1]
        gv += grads[2]


def merge_partial(out, lse, block_out, block_lse):
    """Merge a block's partial softmax result into the running one by the log-sum-exp rule
    (exact); updates ``out`` in place."""
    if out is None:
        return block_out, block_lse
    merged = torch.logaddexp(lse, block_lse)
    out.mul_(torch.exp(lse - merged).unsqueeze(-1))
    out.add_(block_out * torch.exp(block_lse - merged).unsqueeze(-1))
    return out, merged


# ---- the ring ----------------------------------------------------------------------------------
def _pass_along(send: Sequence[torch.Tensor], recv_shapes, group):
    """Post the sends of ``send`` to the next rank and the receives of tensors of
    ``recv_shapes`` from the previous one (one message each, told apart by their tags);
    returns ``(requests, received tensors)``."""
    rank, world = _rank_and_world(group)
    recv = [t.new_empty(shape) for t, shape in zip(send, recv_shapes)]
    nxt, prev = _global_rank(group, (rank + 1) % world), _global_rank(group, (rank - 1) % world)
    ops = [dist.P2POp(dist.isend, t, nxt, group, tag) for tag, t in enumerate(send)]
    ops += [dist.P2POp(dist.irecv, t, prev, group, tag) for tag, t in enumerate(recv)]
    return dist.batch_isend_irecv(ops), recv


def _swap(send: Sequence[torch.Tensor], recv_shapes, group) -> List[torch.Tensor]:
    """:func:`_pass_along` and wait: the tensors that arrived."""
    requests, received = _pass_along(send, recv_shapes, group)
    _wait(requests)
    return received


def _wait(requests: list) -> None:
    """Wait for the requests and drop them (a finished send's request still holds its tensor)."""
    for request in requests:
        request.wait()
    requests.clear()


def _ring_forward(q, k, v, scale, group, sizes):
    rank, world = _rank_and_world(group)

    def shapes(n):  # of the key and value chunk of n tokens
        return [(*k.shape[:-2], n, k.shape[-1]), (*v.shape[:-2], n, v.shape[-1])]

    held = [k, v]
    out = lse = None
    for step in range(world):
        source = (rank - step - 1) % world  # owner of the chunk that arrives next
        pending = _pass_along(held, shapes(sizes[source]), group) \
            if step < world - 1 else None  # in flight while this chunk is computed
        out, lse = merge_partial(out, lse, *block_attention(q, *held, scale))
        if pending is not None:
            requests, held = pending
            _wait(requests)
            pending = None
    return out.contiguous(), lse.contiguous()  # (the fused kernel's are transposed in memory)


def _ring_backward(dout, q, k, v, out, lse, scale, group, sizes):
    rank, world = _rank_and_world(group)

    def shapes(n):  # key, value, and their gradient accumulators
        return [(*k.shape[:-2], n, k.shape[-1]), (*v.shape[:-2], n, v.shape[-1])] * 2

    dq = torch.zeros_like(q)
    held = [k, v, torch.zeros_like(k), torch.zeros_like(v)]  # a chunk and its gradients travel
    for step in range(world):
        add_block_gradients(dq, held[2], held[3], dout, q, held[0], held[1], out, lse, scale)
        next_shapes = shapes(sizes[(rank - step - 1) % world])
        # two exchanges, so that only half of a chunk's buffers are ever in flight
        if step < world - 1:  # the next keys and values (after the last step: none)
            held[:2] = _swap(held[:2], next_shapes[:2], group)
        held[2:] = _swap(held[2:], next_shapes[2:], group)  # gradients; at the end, home
    return dq, held[2], held[3]


class _RingAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, q, k, v, scale, group, sizes):
        with torch.autocast(q.device.type, enabled=False):  # in the inputs' precision
            out, lse = _ring_forward(q, k, v, scale, group, sizes)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.group, ctx.sizes = scale, group, sizes
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            dq, dk, dv = _ring_backward(dout.to(q.dtype).contiguous(), q, k, v, out, lse,
                                        ctx.scale, ctx.group, ctx.sizes)
        return dq, dk, dv, None, None, None


def _gather_rows(row: Sequence[int], group, device) -> List[List[int]]:
    """Every rank's ``row`` of integers (a small all-gather, on the device the backend uses)."""
    _, world = _rank_and_world(group)
    mine = torch.tensor(list(row), dtype=torch.int64, device=device)
    rows = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(rows, mine, group=group)
    return [r.tolist() for r in rows]


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group=None,
                   scale: Optional[float] = None,
                   chunk_sizes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Global softmax attention over a sequence whose tokens are split across ``group``.

    Args:
        q, k, v: this rank's contiguous chunk of the sequence: ``(..., n_r, d)`` (values
            ``(..., n_r, e)``); rank ``r`` holds chunk ``r`` (tokens ordered by rank). Leading
            dimensions (batch, heads) must be the same on every rank.
        group: the process group (``None``: the default group). With one process, or when
            ``torch.distributed`` is not initialised, this is :func:`global_attention`.
        scale: logit scale, default ``d ** -0.5``.
        chunk_sizes: every rank's ``n_r`` (e.g. :func:`shard_sizes`); gathered when omitted.

    Returns:
        This rank's rows of the output, ``(..., n_r, e)``, differentiable (exact backward).
    """
    rank, world = _rank_and_world(group)
    if world == 1:
        return global_attention(q, k, v, scale=scale)
    if not (q.shape[:-1] == k.shape[:-1] == v.shape[:-1] and q.shape[-1] == k.shape[-1]):
        raise ValueError(f'ring_attention: q, k, v must hold the same tokens with q and k of one '
                         f'width: got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}')
    if chunk_sizes is None:
        rows = _gather_rows([*k.shape[:-2], k.shape[-2]], group, k.device)
        if any(r[:-1] != rows[0][:-1] for r in rows):
            raise ValueError(f'ring_attention: the leading dimensions of q, k, v differ across '
                             f'ranks ({[tuple(r[:-1]) for r in rows]}); every rank must hold '
                             f'the same batch and heads, only its share of the tokens')
        chunk_sizes = [r[-1] for r in rows]
    chunk_sizes = [int(n) for n in chunk_sizes]
    if len(chunk_sizes) != world or chunk_sizes[rank] != q.shape[-2] or min(chunk_sizes) < 1:
        raise ValueError(f'ring_attention: chunk_sizes {chunk_sizes} must give every one of the '
                         f'{world} ranks at least one token, and this rank ({rank}) '
                         f'{q.shape[-2]} tokens')
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    dtype = q.dtype  # half precision: the ring and its log-sum-exp merge run in float32
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    out = _RingAttention.apply(*(t.to(work).contiguous() for t in (q, k, v)), scale, group,
                               tuple(chunk_sizes))
    return out.to(dtype)


# ---- sequence parallelism in a model ----------------------------------------------------------
def token_chunk(x: torch.Tensor, dim: int, group=None) -> Tuple[torch.Tensor, List[int]]:
    """This rank's contiguous chunk of ``x`` along ``dim`` and every rank's chunk size."""
    rank, world = _rank_and_world(group)
    sizes = shard_sizes(x.shape[dim], world)
    return x.narrow(dim, sum(sizes[:rank]), sizes[rank]), sizes


class _GatherChunks(torch.autograd.Function):
    """All-gather of the ranks' chunks along ``dim`` (any sizes). Backward: the sum over the ranks
    of the gradient of this rank's chunk (the all-gather's adjoint, a reduce-scatter), which
    data-parallel averaging turns into the exact gradient (:func:`sequence_parallel_attention`)."""

    @staticmethod
    def forward(ctx, chunk, dim, sizes, group):
        rank, world = _rank_and_world(group)
        ctx.dim, ctx.sizes, ctx.group = dim, sizes, group
        shape = list(chunk.shape)
        shape[dim] = max(sizes)
        padded = chunk.new_zeros(shape)
        padded.narrow(dim, 0, sizes[rank]).copy_(chunk)
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded, group=group)
        return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, sizes)], dim=dim)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        rank, _ = _rank_and_world(ctx.group)
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = sum(ctx.sizes[:rank])
        return grad.narrow(ctx.dim, start, ctx.sizes[rank]).contiguous(), None, None, None


def gather_chunks(chunk: torch.Tensor, dim: int, sizes: Sequence[int], group=None) -> torch.Tensor:
    """The whole tensor from every rank's chunk along ``dim`` (differentiable)."""
    return _GatherChunks.apply(chunk, dim, list(sizes), group)


def _same_on_every_rank(x: torch.Tensor, group, rtol: float = 1e-5) -> bool:
    """Whether every rank holds the same ``x`` (shapes equal, sums of ``x`` and ``|x|`` agree to
    ``rtol``: the ranks' replicated computations may differ by float rounding on GPU)."""
    _, world = _rank_and_world(group)
    data = x.detach().double()
    shape = torch.tensor([x.dim(), *x.shape] + [0] * (8 - x.dim()), dtype=torch.float64,
                         device=x.device)
    mine = torch.cat([shape, torch.stack([data.sum(), data.abs().sum()])])
    rows = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(rows, mine, group=group)
    table = torch.stack(rows).cpu()
    if (table[:, :-2] != table[0, :-2]).any():
        return False
    sums = table[:, -2:]
    return bool(((sums - sums[0]).abs() <= rtol * sums[0].abs().clamp_min(1e-30)).all())


def sequence_parallel_attention(tokens: torch.Tensor, to_qkv: Callable, group=None,
                                scale: Optional[float] = None) -> torch.Tensor:
    """Self-attention of ``tokens`` with the tokens sharded over the ranks of ``group``.

    Sequence parallelism: every rank holds the same images (a sampler that gives every process
    the same batch, e.g. ``ReplicatedInfiniteSampler``); rank ``r`` projects only its chunk of
    the tokens (``to_qkv``), :func:`ring_attention` gives that chunk's output, and the chunks are
    all-gathered, so the output is the same on every rank. Per rank: ``1/P`` of the projections
    and of the ``O(N^2)`` attention. The gradients of the sharded part sum over the ranks
    (the all-gather's adjoint); after data-parallel averaging (DDP) every gradient equals the
    one-process gradient.

    When the ranks hold different inputs (the default, data-parallel sampler; e.g. validation)
    or a map has fewer tokens than ranks, each rank attends over its own tokens unsharded:
    the result is exact either way. With one process this is ``global_attention(*to_qkv(tokens))``.

    Args:
        tokens: ``(B, N, C)``.
        to_qkv: ``tokens (B, n, C) -> (q, k, v)``, each ``(B, heads, n, d)``.
        group: the process group (``None``: the default group).
        scale: logit scale, default ``d ** -0.5``.

    Returns:
        ``(B, heads, N, d)``.
    """
    _, world = _rank_and_world(group)
    if world > 1 and _same_on_every_rank(tokens, group) and tokens.shape[1] >= world:
        chunk, sizes = token_chunk(tokens, 1, group)
        out = ring_attention(*to_qkv(chunk), group=group, scale=scale, chunk_sizes=sizes)
        return gather_chunks(out, -2, sizes, group)
    if world > 1 and torch.is_grad_enabled():
        warnings.warn('sequence_parallel_attention: the processes hold different images, so '
                      'each attends over its own tokens, unsharded; to shard, give every '
                      'process the same batch (sampler=dict(type="ReplicatedInfiniteSampler"))',
                      stacklevel=2)
    return global_attention(*to_qkv(tokens), scale=scale)
