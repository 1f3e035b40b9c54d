"""Linear attention primitives: cost linear in tokens, ``O(N d^2)`` per head, never ``N x N``.

* :func:`injective_linear_attention`: InLine's injective normalisation, "Bridging the Divide:
  Reconsidering Softmax and Linear Attention" (Han et al., NeurIPS 2024, arXiv 2412.06590), Eq. 5.
* :func:`relu_linear_attention`: L2ViT's enhanced linear global attention, "The Linear Attention
  Resurrection in Vision Transformer" (Zheng): ReLU kernel, a
  learnable per-head temperature, a clamped normaliser.
* :func:`dynamic_depthwise_conv2d`: a depth-wise convolution whose kernel differs per sample
  (InLine's local residual).
* :func:`taylor_feature_map`, :func:`taylor_linear_attention`: BASED's second-order Taylor kernel,
  "Simple linear attention language models balance the recall-throughput tradeoff" (Arora et al.,
  arXiv 2402.18668, Sec. 4), non-causal.

Tensors are ``(B, heads, N, d)``. Each function has the explicit ``N x N`` form in its docstring;
the tests check the fused form against it.
"""
import math

import torch
import torch.nn.functional as F


def injective_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               scale: float) -> torch.Tensor:
    """InLine attention: weights ``A_nm = s/N q_n.k_m + (1 - s q_n.mean(k)) / N`` (rows sum to 1).

    Eq. 5 of the paper, with InLine's code's scale ``s = d^-1/2``: ``out = Q (K^T V) s / N +
    (1 - s Q mean(K)) mean(V)``. Both terms fold into one ``d x d`` matrix,
    ``M = s / N (K - mean(K))^T V``, so ``out = Q M + mean(V)``: one pass over the tokens.
    """
    N = k.shape[-2]
    k_mean = k.mean(dim=-2, keepdim=True)                                  # B h 1 d
    v_mean = v.mean(dim=-2, keepdim=True)
    m = ((k - k_mean).transpose(-2, -1) @ v) * (scale / N)                # B h d dv
    out = torch.baddbmm(v_mean.reshape(-1, 1, v.shape[-1]), q.reshape(-1, *q.shape[-2:]),
                        m.reshape(-1, *m.shape[-2:]))
    return out.view(*q.shape[:-1], v.shape[-1])


def relu_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          temperature: torch.Tensor, denom_min: float = 100.0) -> torch.Tensor:
    """L2ViT attention: ``out_n = t sum_m phi(q_n).phi(k_m) v_m / max(phi(q_n).sum phi(k), c)``.

    ``phi = ReLU``, ``t`` the per-head temperature (heads, 1, 1), ``c = denom_min`` (100 in
    L2ViT: the clamp that keeps training stable). Computed keys-first: ``phi(Q) (phi(K)^T V)``.
    """
    q = F.relu(q)
    k = F.relu(k)
    denom = (q @ k.sum(dim=-2).unsqueeze(-1)).clamp_min(denom_min)         # B h N 1
    kv = (k.transpose(-2, -1) @ v) * temperature                           # B h d d
    return (q @ kv) / denom


def dynamic_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depth-wise 'same' convolution with a kernel per sample and channel.

    x: (B, C, H, W); weight: (B, C, k, k) with k odd. Zero padding ``k // 2``, no bias.
    """
    B, C, H, W = x.shape
    k = weight.shape[-1]
    out = F.conv2d(x.reshape(1, B * C, H, W), weight.reshape(B * C, 1, k, k),
                   padding=k // 2, groups=B * C)
    return out.view(B, C, H, W)


def taylor_feature_map(x: torch.Tensor) -> torch.Tensor:
    """BASED's ``TaylorExp``: ``phi(x) = [1, x / d^(1/4), vec(x x^T) / (sqrt(2) sqrt(d))]``.

    ``x``: ``(..., d)`` -> ``(..., 1 + d + d^2)``, so that ``phi(q) . phi(k) = 1 + s + s^2 / 2``
    with ``s = q . k / sqrt(d)``: the second-order Taylor expansion of ``exp(s)`` (BASED Sec. 4.1).
    The second-order block is the full outer product (both triangles), as in the released code.
    """
    d = x.shape[-1]
    x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (math.sqrt(2) * math.sqrt(d))
    return torch.cat([torch.ones_like(x[..., :1]), x / d ** 0.25, x2], dim=-1)


def taylor_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            eps: float = 1e-12) -> torch.Tensor:
    """Non-causal BASED linear attention: ``y_i = phi(q_i)^T S / (phi(q_i)^T z + eps)`` with
    ``S = sum_j phi(k_j) v_j^T`` and ``z = sum_j phi(k_j)``.

    The explicit form: weights ``A_ij = 1 + s_ij + s_ij^2 / 2`` (``s = q . k / sqrt(d')``), ``y =
    A V / (A 1 + eps)``; ``A >= 1/2``, so the division is safe. BASED's causal code sums over
    ``j <= i`` (a cumulative sum); vision has no order, so every query sums over all keys.
    q, k: ``(B, heads, N, d')``; v: ``(B, heads, N, d_v)``. Cost ``O(N d'^2 d_v)``, state
    ``(1 + d' + d'^2) x d_v`` per head, accumulated in fp32 (or fp64 for fp64 inputs).
    """
    acc = torch.promote_types(q.dtype, torch.float32)
    fq, fk = taylor_feature_map(q.to(acc)), taylor_feature_map(k.to(acc))
    state = fk.transpose(-2, -1) @ v.to(acc)                               # B h F dv
    norm = fq @ fk.sum(dim=-2).unsqueeze(-1)                               # B h N 1
    return ((fq @ state) / (norm + eps)).to(v.dtype)
