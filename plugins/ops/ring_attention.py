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
flight), ``2 (P - 1)`` messages of one chunk per pass. Token counts need not divide by ``P``
(:func:`shard_sizes`: the first ``N mod P`` ranks hold one token more). Works on any backend with
point-to-point sends: gloo on CPU, NCCL on GPU. With one process (or no process group) the op *is*
:func:`global_attention` (SDPA), the one-process op.

Block kernel: on CPU, PyTorch's fused flash-attention kernel, which returns the log-sum-exp
(``aten._scaled_dot_product_flash_attention_for_cpu``, memory ``O(n d)``); elsewhere (and as its
specification) the same math written out, queries in blocks of :data:`QUERY_BLOCK` so that the
logits never exceed ``QUERY_BLOCK x n`` per head.

:func:`sequence_parallel_attention` runs the ring under data parallelism, where every rank holds
whole images of its own: every image's tokens are sharded over all ranks (an all-to-all), the
rings run, and the outputs return to the image's rank.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from .global_attention import global_attention

__all__ = ['shard_sizes', 'ring_attention', 'sequence_parallel_attention']

QUERY_BLOCK = 1024  # queries per block of the written-out kernel (bounds its logits' memory)


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


def merge_partial(out, lse, block_out, block_lse):
    """Merge two partial softmax results by the log-sum-exp rule (exact)."""
    if out is None:
        return block_out, block_lse
    merged = torch.logaddexp(lse, block_lse)
    out = out * torch.exp(lse - merged).unsqueeze(-1) + \
        block_out * torch.exp(block_lse - merged).unsqueeze(-1)
    return out, merged


# ---- the ring ----------------------------------------------------------------------------------
def _pack(*tensors: torch.Tensor) -> torch.Tensor:
    """One contiguous buffer, so that one message carries them all."""
    return torch.cat([t.reshape(-1) for t in tensors])


def _unpack(buffer: torch.Tensor, shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
    sizes = [math.prod(s) for s in shapes]
    return [part.view(s) for part, s in zip(buffer.split(sizes), shapes)]


def _pass_along(send: torch.Tensor, recv_numel: int, group):
    """Post the send of ``send`` to the next rank and the receive of ``recv_numel`` elements from
    the previous one; returns ``(requests, receive buffer)``."""
    rank, world = _rank_and_world(group)
    recv = send.new_empty(recv_numel)
    ops = [dist.P2POp(dist.isend, send, _global_rank(group, (rank + 1) % world), group),
           dist.P2POp(dist.irecv, recv, _global_rank(group, (rank - 1) % world), group)]
    return dist.batch_isend_irecv(ops), recv


def _wait(requests) -> None:
    for request in requests:
        request.wait()


def _ring_forward(q, k, v, scale, group, sizes):
    rank, world = _rank_and_world(group)
    lead, dk, dv = k.shape[:-2], k.shape[-1], v.shape[-1]

    def shapes(n):  # of the key and value chunk of n tokens
        return [(*lead, n, dk), (*lead, n, dv)]

    held, n_held = _pack(k, v), k.shape[-2]
    out = lse = None
    for step in range(world):
        source = (rank - step - 1) % world  # owner of the chunk that arrives next
        pending = _pass_along(held, sum(map(math.prod, shapes(sizes[source]))), group) \
            if step < world - 1 else None  # in flight while this chunk is computed
        out, lse = merge_partial(out, lse, *block_attention(q, *_unpack(held, shapes(n_held)),
                                                            scale))
        if pending is not None:
            _wait(pending[0])
            held, n_held = pending[1], sizes[source]
    return out, lse


def _ring_backward(dout, q, k, v, out, lse, scale, group, sizes):
    rank, world = _rank_and_world(group)
    lead, dk, dv = k.shape[:-2], k.shape[-1], v.shape[-1]

    def shapes(n):  # key, value, and their gradient accumulators
        return [(*lead, n, dk), (*lead, n, dv)] * 2

    dq = torch.zeros_like(q)
    held, n_held = _pack(k, v, torch.zeros_like(k), torch.zeros_like(v)), k.shape[-2]
    for step in range(world):
        key, value, grad_key, grad_value = _unpack(held, shapes(n_held))
        dq_b, dk_b, dv_b = block_attention_backward(dout, q, key, value, out, lse, scale)
        dq += dq_b
        grad_key += dk_b  # accumulates in ``held``, travelling with its chunk
        grad_value += dv_b
        source = (rank - step - 1) % world
        n_next = sizes[source]
        if step < world - 1:
            requests, held = _pass_along(held, sum(map(math.prod, shapes(n_next))), group)
        else:  # the last hop takes the gradients home to the chunk's owner
            requests, held = _pass_along(_pack(grad_key, grad_value),
                                         sum(map(math.prod, shapes(n_next)[2:])), group)
        _wait(requests)
        n_held = n_next
    grad_k, grad_v = _unpack(held, shapes(k.shape[-2])[2:])
    return dq, grad_k, grad_v


class _RingAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, q, k, v, scale, group, sizes):
        out, lse = _ring_forward(q, k, v, scale, group, sizes)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.group, ctx.sizes = scale, group, sizes
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _ring_backward(dout.contiguous(), q, k, v, out, lse, ctx.scale, ctx.group,
                                    ctx.sizes)
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
    return _RingAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), scale, group,
                                tuple(chunk_sizes))


# ---- data parallel + sequence parallel ---------------------------------------------------------
class _AllToAll(torch.autograd.Function):
    """Rank ``r`` sends ``send[j]`` to rank ``j`` and receives ``recv_shapes[j]`` from it;
    tensors of any sizes (point-to-point messages), differentiable (the reverse exchange)."""

    @staticmethod
    def forward(ctx, group, recv_shapes, *send):
        ctx.group, ctx.send_shapes = group, [t.shape for t in send]
        return tuple(_exchange([t.contiguous() for t in send], recv_shapes, group))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        grads = _exchange([g.contiguous() for g in grads], ctx.send_shapes, ctx.group)
        return (None, None, *grads)


def _exchange(send: List[torch.Tensor], recv_shapes, group) -> List[torch.Tensor]:
    rank, world = _rank_and_world(group)
    recv = [send[rank].new_empty(s) for s in recv_shapes]
    recv[rank].copy_(send[rank])
    ops = []
    for step in range(1, world):  # pair up as a ring schedule: to r + step, from r - step
        dst, src = (rank + step) % world, (rank - step) % world
        ops.append(dist.P2POp(dist.isend, send[dst], _global_rank(group, dst), group))
        ops.append(dist.P2POp(dist.irecv, recv[src], _global_rank(group, src), group))
    _wait(dist.batch_isend_irecv(ops))
    return recv


def sequence_parallel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group=None,
                                scale: Optional[float] = None) -> torch.Tensor:
    """Global attention of each rank's own images, their tokens sharded over all ranks.

    Under data parallelism every rank holds different images (any batch size and token count
    per rank). Here rank ``r`` takes the ``r``-th contiguous token chunk of *every* rank's
    ``q, k, v`` (an all-to-all), one ring per image source computes :func:`ring_attention`,
    and the output chunks go back to their source (the reverse all-to-all). The result on each
    rank equals ``global_attention(q, k, v)`` of its own inputs, with ``O(N^2 / P)`` attention
    work and memory per rank; gradients flow back the same way. With one process this is
    :func:`global_attention`; maps with fewer tokens than ranks are computed locally.

    Args:
        q, k, v: ``(B, heads, N, d)`` of this rank's images (values ``(B, heads, N, e)``).
        group: the process group (``None``: the default group).
        scale: logit scale, default ``d ** -0.5``.
    """
    rank, world = _rank_and_world(group)
    if world == 1:
        return global_attention(q, k, v, scale=scale)
    if q.dim() != 4 or q.shape[:-1] != k.shape[:-1] or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f'sequence_parallel_attention takes q, k, v of shape (B, heads, N, d); '
                         f'got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}')
    b, heads, n, d = q.shape
    table = _gather_rows([b, n, heads, d, v.shape[-1]], group, q.device)  # one row per source
    if any(row[2:] != table[0][2:] for row in table):
        raise ValueError(f'sequence_parallel_attention: heads and widths differ across ranks '
                         f'({[tuple(row[2:]) for row in table]}): every rank must run the same '
                         f'model')
    if min(row[1] for row in table) < world:  # a map smaller than the group: no sharding
        return global_attention(q, k, v, scale=scale)
    dv = v.shape[-1]
    sizes = [shard_sizes(row[1], world) for row in table]  # sizes[source][rank]
    # this rank's images, chunk j (packed q | k | v) -> rank j; receive chunk ``rank`` of source s
    send = list(torch.cat([q, k, v], dim=-1).split(sizes[rank], dim=-2))
    recv_shapes = [(src_b, heads, sizes[s][rank], 2 * d + dv)
                   for s, (src_b, *_) in enumerate(table)]
    chunks = _AllToAll.apply(group, recv_shapes, *send)
    outs = [ring_attention(*chunk.split([d, d, dv], dim=-1), group=group, scale=scale,
                           chunk_sizes=sizes[s]) for s, chunk in enumerate(chunks)]
    # output chunk of source s -> rank s; receive every rank's chunk of this rank's images
    back = _AllToAll.apply(group, [(b, heads, sizes[rank][j], dv) for j in range(world)], *outs)
    return torch.cat(back, dim=-2)
