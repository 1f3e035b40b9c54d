"""Ring self-attention equals one-process SDPA: the block kernels and the log-sum-exp merge in
one process, then the ring and the sequence-parallel mixer on 2 and 3 gloo processes (odd token
counts, forward and input / weight gradients within 1e-5; the mixer's gradients after DDP's
averaging)."""
import copy
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from plugins.mixers.global_attention import GlobalSelfAttention
from plugins.ops.global_attention import dense_attention
from plugins.ops.ring_attention import (block_attention, block_attention_backward, merge_partial,
                                        ring_attention, shard_sizes)

TOL = 1e-5


def max_err(a, b):
    return (a - b).abs().max().item()


def test_shard_sizes_split_tokens_into_contiguous_near_equal_chunks():
    assert shard_sizes(37, 3) == [13, 12, 12]
    assert shard_sizes(8, 4) == [2, 2, 2, 2]
    assert sum(shard_sizes(1001, 7)) == 1001 and max(shard_sizes(1001, 7)) == 143


@pytest.mark.parametrize('fused', [True, False])
def test_block_kernel_returns_the_dense_output_and_log_sum_exp(fused, monkeypatch):
    monkeypatch.setattr('plugins.ops.ring_attention.QUERY_BLOCK', 8)  # several query blocks
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64) for n in (19, 23, 23))
    out, lse = block_attention(q, k, v, 0.3, fused=fused)
    assert max_err(out, dense_attention(q, k, v, scale=0.3)) < 1e-12
    assert max_err(lse, torch.logsumexp(q @ k.transpose(-2, -1) * 0.3, -1)) < 1e-12


@pytest.mark.parametrize('fused', [True, False])
def test_merged_key_blocks_and_their_backward_equal_sdpa(fused, monkeypatch):
    monkeypatch.setattr('plugins.ops.ring_attention.QUERY_BLOCK', 8)
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64, requires_grad=True)
               for n in (19, 31, 31))
    ref = F.scaled_dot_product_attention(q, k, v)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    blocks = [slice(0, 10), slice(10, 21), slice(21, 31)]
    out = lse = None
    for b in blocks:
        out, lse = merge_partial(out, lse, *block_attention(q, k[..., b, :], v[..., b, :],
                                                            8 ** -0.5, fused=fused))
    assert max_err(out, ref) < 1e-12
    dq = 0
    for b in blocks:
        dq_b, dk_b, dv_b = block_attention_backward(grad, q, k[..., b, :], v[..., b, :], out, lse,
                                                    8 ** -0.5, fused=fused)
        dq = dq + dq_b
        assert max_err(dk_b, k.grad[..., b, :]) < 1e-12
        assert max_err(dv_b, v.grad[..., b, :]) < 1e-12
    assert max_err(dq, q.grad) < 1e-12


def test_one_process_is_exactly_sdpa():
    q, k, v = (torch.randn(2, 3, 37, 8) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v)
    assert torch.equal(ring_attention(q, k, v), expected)
    plain = GlobalSelfAttention(32, 4)
    sharded = GlobalSelfAttention(32, 4, sequence_parallel=True)
    sharded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 32, 5, 7)
    assert torch.equal(sharded(x), plain(x))


# ---- several processes -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check_ring_attention(rank, world):
    """Each rank holds its chunk of the same 37 tokens; forward and q / k / v gradients."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 8, generator=gen, requires_grad=True) for _ in range(3))
    grad = torch.randn(2, 3, 37, 8, generator=gen)
    ref = F.scaled_dot_product_attention(q, k, v)
    ref.backward(grad)
    start = sum(shard_sizes(37, world)[:rank])
    rows = slice(start, start + shard_sizes(37, world)[rank])
    mine = [t.detach()[..., rows, :].clone().requires_grad_() for t in (q, k, v)]
    out = ring_attention(*mine)
    out.backward(grad[..., rows, :])
    assert max_err(out, ref[..., rows, :]) < TOL
    for local, full in zip(mine, (q, k, v)):
        assert max_err(local.grad, full.grad[..., rows, :]) < TOL


def mixer_run(mixer, x, grad):
    """Output, input gradient and weight gradients of ``mixer(x)`` for the upstream ``grad``."""
    mixer.zero_grad()
    x = x.clone().requires_grad_()
    out = mixer(x)
    out.backward(grad)
    return out.detach(), x.grad, [p.grad.clone() for p in mixer.parameters()]


def averaged(tensors, world):
    """Data-parallel averaging of the ranks' gradients (what DDP does)."""
    for t in tensors:
        dist.all_reduce(t)
        t /= world
    return tensors


def check_bfloat16_autocast(rank, world):
    """Under CPU autocast (bfloat16), the ring runs in float32 and returns the inputs' dtype."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 37, 8, generator=gen) for _ in range(3))
    rows = slice(sum(shard_sizes(37, world)[:rank]), sum(shard_sizes(37, world)[:rank + 1]))
    mine = [t[..., rows, :].bfloat16().requires_grad_() for t in (q, k, v)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ring_attention(*mine)
    out.float().sum().backward()
    expected = F.scaled_dot_product_attention(*(t.bfloat16().float() for t in (q, k, v)))
    assert out.dtype == torch.bfloat16 and mine[0].grad.dtype == torch.bfloat16
    assert max_err(out.float(), expected[..., rows, :]) < 1e-2


def check_sequence_parallel_mixer(rank, world):
    """Every rank holds the same image (sequence parallelism): the sharded mixer's output is the
    unsharded one on every rank, and its gradients, averaged over the ranks as DDP averages
    them, are the unsharded gradients."""
    torch.manual_seed(0)
    plain = GlobalSelfAttention(32, 4)
    sharded = copy.deepcopy(plain)
    sharded.sequence_parallel = True
    gen = torch.Generator().manual_seed(10)  # the same on every rank
    x = torch.randn(2, 32, 5, 7, generator=gen)  # 35 tokens: 18 / 17 or 12 / 12 / 11
    grad = torch.randn(x.shape, generator=gen)
    expected, dx, dw = mixer_run(plain, x, grad)
    out, sharded_dx, sharded_dw = mixer_run(sharded, x, grad)
    assert max_err(out, expected) < TOL
    assert not torch.allclose(sharded_dw[0], dw[0])  # sharded: this rank's part of the weights'
    for a, b in zip(averaged([sharded_dx, *sharded_dw], world), [dx, *dw]):
        assert max_err(a, b) < TOL


def check_different_images_are_attended_unsharded(rank, world):
    """Ranks with images of their own (data parallelism): each attends over its own tokens."""
    torch.manual_seed(0)
    plain = GlobalSelfAttention(32, 4)
    sharded = copy.deepcopy(plain)
    sharded.sequence_parallel = True
    x = torch.randn(1 + rank % 2, 32, 5 + rank, 7)  # per-rank batch and map size
    with pytest.warns(UserWarning, match='unsharded'):
        out = sharded(x)
    assert torch.equal(out, plain(x))


def _worker(rank, world, port):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        check_ring_attention(rank, world)
        check_bfloat16_autocast(rank, world)
        check_sequence_parallel_mixer(rank, world)
        check_different_images_are_attended_unsharded(rank, world)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('world', [2, 3])
def test_ring_and_sharded_mixer_equal_sdpa_on_gloo_processes(world):
    # forked, not spawned: a spawned child re-imports the whole OpenMMLab stack (30-50 s for
    # 2-3 children on 2 cores); each child runs torch on one thread (no OpenMP pool after fork)
    mp.start_processes(_worker, args=(world, free_port()), nprocs=world, start_method='fork')
