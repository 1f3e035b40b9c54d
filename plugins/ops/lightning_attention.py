"""Lightning attention: block-wise decayed linear attention, in pure PyTorch, causal or not.

Papers: Qin et al., "Various Lengths, Constant Speed: Efficient Language Modeling with Lightning
Attention" (ICML 2024, arXiv 2405.17381) and "Lightning Attention-2: A Free Lunch for Handling
Unlimited Sequence Lengths in Large Language Models" (arXiv 2401.04658, Algorithm 1). The attention
is linear and unnormalised, with a per-head decay ``lambda`` (TransNormerLLM's ``exp(-slope)``): ``O
= [(Q K^T) (.) M] V``, causal ``M_ij = lambda^(i-j)`` for ``j <= i`` (0 otherwise). The sequence is
cut into blocks of ``B`` tokens: inside a block the products are explicit (``[(Q_t K_t^T) (.) D]
V_t``, the intra-block part); across blocks a ``d x d_v`` key-value state carries the earlier blocks
(the inter-block part, the kernel trick), decayed by ``lambda^B`` per block: ``KV_{t+1} = lambda^B
KV_t + (lambda^(B-1-j) K_t)^T V_t``, ``O_inter = (lambda^(i+1) Q_t) KV_t``.

Non-causal (the vision form): ``M_ij = lambda^|i-j|``, i.e. the causal pass (diagonal included)
plus its mirror over strictly later blocks and positions (the anti-causal pass), each computed
block-wise as above. The recurrence over blocks runs as a parallel scan
(:func:`plugins.ops.recurrence.linear_recurrence`), not a Python loop.

Cost ``O(N B d + N d d_v)`` time, ``O(N B + (N / B) d d_v)`` memory per head; never ``N x N``.
The official kernels (Triton, ``BLOCK = 64``) are GPU-only; this path runs anywhere.
"""
import torch
import torch.nn.functional as F

from .recurrence import linear_recurrence

__all__ = ['lightning_attention']


def _block_state(k: torch.Tensor, v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per block ``sum_j weight_j k_j v_j^T``: ``(B, h, nB, L, d), (h, L) -> (B, h, nB, d, dv)``."""
    return torch.matmul((k * weight[:, None, :, None]).transpose(-1, -2), v)


def lightning_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor,
                        block_size: int = 64, causal: bool = False) -> torch.Tensor:
    """Block-wise decayed linear attention (Lightning Attention-2).

    Args:
        q, k: ``(B, heads, N, d)``; v: ``(B, heads, N, d_v)``.
        decay: ``lambda`` per head, ``(heads,)``, in ``(0, 1]`` (1 = no decay).
        block_size: tokens per block ``B`` (clamped to ``N``); the result does not depend on it.
        causal: ``M_ij = lambda^(i-j) [j <= i]`` if True, else ``lambda^|i-j|``.

    Returns:
        ``(B, heads, N, d_v)``.
    """
    if q.dim() != 4:
        raise ValueError(f'q must be (B, heads, N, d), got shape {tuple(q.shape)}')
    b, nh, n, _ = q.shape
    if decay.shape != (nh,):
        raise ValueError(f'decay must have shape (heads,) = ({nh},), got {tuple(decay.shape)}')
    if block_size < 1:
        raise ValueError(f'block_size must be >= 1, got {block_size}')
    bs = min(block_size, n)
    pad = (-n) % bs
    if pad:  # zero keys and values add nothing; padded queries are dropped
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    nb = (n + pad) // bs
    qb, kb, vb = (t.reshape(b, nh, nb, bs, t.shape[-1]) for t in (q, k, v))
    log_decay = torch.log(decay.to(q.dtype))                                 # heads
    pos = torch.arange(bs + 1, device=q.device, dtype=q.dtype)
    power = torch.exp(log_decay[:, None] * pos)                              # lambda^0 .. lambda^B
    # intra-block: explicit products with D_ij = lambda^|i-j| (causal: j <= i only)
    offset = pos[:bs, None] - pos[None, :bs]
    d_intra = torch.exp(log_decay[:, None, None] * offset.abs())
    if causal:
        d_intra = d_intra * (offset >= 0)
    out = torch.matmul(torch.matmul(qb, kb.transpose(-1, -2)) * d_intra[:, None], vb)
    if nb == 1:
        return out.reshape(b, nh, n + pad, -1)[:, :, :n]
    block_decay = power[:, bs].view(1, nh, 1, 1, 1).expand(1, nh, nb, 1, 1)  # lambda^B per block
    # earlier blocks: key j of block s reaches query i of block t > s with
    # lambda^(B-1-j) * lambda^(B (t-1-s)) * lambda^(i+1)
    state = _block_state(kb, vb, power[:, :bs].flip(-1))                    # B h nB d dv
    state = linear_recurrence(block_decay, state, dim=2)                    # through block s
    state = F.pad(state, (0, 0, 0, 0, 1, 0))[:, :, :nb]                      # strictly before t
    out = out + torch.matmul(qb * power[:, 1:, None][:, None], state)
    if not causal:
        # later blocks, mirrored: lambda^j * lambda^(B (s-1-t)) * lambda^(B-i)
        state = _block_state(kb, vb, power[:, :bs]).flip(2)
        state = linear_recurrence(block_decay, state, dim=2)
        state = F.pad(state, (0, 0, 0, 0, 1, 0))[:, :, :nb].flip(2)
        out = out + torch.matmul(qb * power[:, 1:].flip(-1)[:, None, :, None], state)
    return out.reshape(b, nh, n + pad, -1)[:, :, :n]
