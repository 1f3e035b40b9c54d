"""Routing attention: online k-means clusters of queries and keys, attention inside each cluster.

Paper: Roy, Saffar, Vaswani, Grangier, "Efficient Content-Based Sparse Attention with Routing
Transformers" (arXiv 2003.05997). Facts from the official code
(google-research ``routing_transformer/utils.py``: ``clustered_local_attention_helper``,
``online_kmeans``, ``gather_cluster_attention_items``, ``scatter_cluster_items``):

* queries and keys are layer-normalised without scale or bias, per head; the *normalised* vectors
  are both routed and attended with (their dot products unscaled);
* ``scores = x . mu^T`` against ``c`` centroids per head; each cluster takes the ``w`` tokens with
  the highest score (*balanced* top-``w`` membership: a token may sit in 0, 1 or several clusters;
  queries and keys are chosen separately, from their own scores);
* every cluster runs ``w x w`` softmax attention; outputs are scattered back and averaged over the
  clusters a query sits in, ``out = sum / (count + 1e-2)``; a query in no cluster gets 0;
* centroids are not trained by gradient: exponential moving averages of the counts and sums of the
  items nearest to each centroid (decay, Laplace smoothing ``eps = 1e-5``), in training only
  (the owner of the buffers chooses their start, see :func:`ema_kmeans_update`);
* the commitment loss ``beta * mean ||x - sg(mu_nearest(x))||^2`` trains the projections towards
  their centroids.

Cost: ``O(N c d)`` routing plus ``O(c w^2 d)`` attention; with ``w = ceil(N / c)``,
``O(N^2 d / c)`` (``O(N^1.5 d)`` at ``c = sqrt(N)``). Memory ``O(c w^2)`` logits; never ``N x N``.
"""
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ['routed_attention', 'top_members', 'commitment_loss', 'ema_kmeans_update']


def top_members(scores: torch.Tensor, window: int) -> torch.Tensor:
    """Balanced membership: the ``window`` tokens with the highest score per cluster.

    ``scores: (B, heads, N, c) -> (B, heads, c, window)`` token indices (``window`` clamped to N).
    """
    window = min(window, scores.shape[2])
    return scores.topk(window, dim=2).indices.transpose(2, 3)


def routed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_members: torch.Tensor,
                     k_members: torch.Tensor, scale: float, eps: float = 1e-2) -> torch.Tensor:
    """Attention inside clusters, averaged over each query's clusters.

    Args:
        q, k: ``(B, heads, N, d)``; v: ``(B, heads, N, d_v)``.
        q_members, k_members: ``(B, heads, c, w)`` token indices of each cluster's queries and
            keys (:func:`top_members`).
        scale: logit scale.
        eps: added to the membership count before averaging (1e-2 in the official code).

    Returns:
        ``(B, heads, N, d_v)``: ``sum_{clusters of i} softmax(q_i K_c^T) V_c / (count_i + eps)``.
    """
    b, nh, n, d = q.shape
    dv = v.shape[-1]
    c, w = q_members.shape[2:]
    base = (torch.arange(b * nh, device=q.device) * n).view(b, nh, 1, 1)
    q_rows = (base + q_members).reshape(-1)
    k_rows = (base + k_members).reshape(-1)
    qc = q.reshape(b * nh * n, d).index_select(0, q_rows).view(b * nh * c, w, d)
    kc = k.reshape(b * nh * n, d).index_select(0, k_rows).view(b * nh * c, k_members.shape[3], d)
    vc = v.reshape(b * nh * n, dv).index_select(0, k_rows).view(b * nh * c, -1, dv)
    out = F.scaled_dot_product_attention(qc, kc, vc, scale=scale).reshape(-1, dv)
    summed = out.new_zeros(b * nh * n, dv).index_add(0, q_rows, out)
    count = torch.bincount(q_rows, minlength=b * nh * n).to(out.dtype)
    return (summed / (count + eps)[:, None]).view(b, nh, n, dv)


def commitment_loss(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``mean ||x - sg(mu_nearest)||^2`` over all elements (the official ``e_loss``), with
    ``nearest = argmax_c x . mu_c``; ``x: (B, heads, N, d)``, ``means: (heads, c, d)``."""
    nearest = torch.einsum('bhnd,hcd->bhnc', x.detach(), means).argmax(-1)   # B h N
    heads = torch.arange(means.shape[0], device=x.device).view(1, -1, 1)
    return F.mse_loss(x, means[heads, nearest].detach())


@torch.no_grad()
def ema_kmeans_update(x: torch.Tensor, means: torch.Tensor, ema_count: torch.Tensor,
                      ema_sum: torch.Tensor, decay: float, eps: float = 1e-5,
                      process_group: Optional[object] = None) -> None:
    """One online k-means step (the official ``online_kmeans`` with ``ema=True``), in place.

    Each item is assigned to its nearest centroid; the counts and sums per centroid, summed over
    the batch (and over processes when ``torch.distributed`` is initialised), update
    ``ema_count (heads, c)`` and ``ema_sum (heads, c, d)`` by exponential moving averages; then
    ``means = ema_sum / laplace(ema_count)`` with
    ``laplace(n_k) = (n_k + eps) / (n + c eps) * n``, ``n = sum_k n_k``.

    The official code starts ``ema_count`` at 0 and ``ema_sum`` at the initial centroids, so the
    first steps divide the initial centroids by a count of order ``1 - decay`` (a centroid that
    gets no item grows by ``1 / eps``); starting ``ema_count`` at 1 (one pseudo-item at the initial
    centroid) keeps every centroid an average from the first step.
    """
    nh, c, d = means.shape
    xf = x.detach().to(means.dtype)
    one_hot = F.one_hot(torch.einsum('bhnd,hcd->bhnc', xf, means).argmax(-1), c).to(means.dtype)
    count = one_hot.sum(dim=(0, 2))                                          # h c
    total = torch.einsum('bhnc,bhnd->hcd', one_hot, xf)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(process_group) > 1:
        dist.all_reduce(count, group=process_group)
        dist.all_reduce(total, group=process_group)
    ema_count.mul_(decay).add_(count, alpha=1 - decay)
    ema_sum.mul_(decay).add_(total, alpha=1 - decay)
    n = ema_count.sum(-1, keepdim=True)
    smoothed = (ema_count + eps) / (n + c * eps) * n
    means.copy_(ema_sum / smoothed.unsqueeze(-1))
