"""RazorAttention for vision inference: a trained global-attention mixer is compressed head by
head; retrieval heads keep global attention, every other head keeps a window around each query
plus one compensation token that stands for everything outside the window.
Paper: Tang et al., "RazorAttention: Efficient KV Cache Compression Through Retrieval Heads"
(ICLR 2025, arXiv 2407.15891), Sec. 3 / Alg. 1: retrieval heads (echo and induction heads, about
15 % of all heads, ranked over the whole model) keep their full KV cache; the others keep the
attention sinks and the recent tokens, and the dropped tokens are folded into one compensation
token, the mean key ``k^ = mean_D k`` and value ``v^ = mean_D v`` of the dropped set ``D``, attended
as if it were ``m = |D|`` tokens: ``o = (sum_K e^{q.k} v + m e^{q.k^} v^) / (sum_K e^{q.k} + m
e^{q.k^})``, i.e. one extra key with logit bias ``log m`` (Eq. 4-5). No official code was found.

Vision adaptation (an encoder has no KV cache; the saving is in compute and memory):

* the window: a centred ``k x k`` square around each query (cut at the borders), the 2-D
  counterpart of "recent tokens"; its complement gets one compensation token per query,
  computed with box sums in ``O(N k^2 d)``
  (:func:`plugins.ops.band_attention.band_complement_mean`);
  ``m = 0`` (the window covers the map) drops it. A mixer has no sink tokens (no cls or register
  token reaches it), so none are kept.
* head selection: the paper finds echo / induction heads with repeated random token sequences,
  i.e. the heads that fetch *specific* distant tokens, the ones a mean token cannot stand in for.
  Images have no repeated-sequence probe, so :func:`retrieval_head_scores` measures that property
  directly on calibration images: the relative error ``||o_razor - o_global|| / ||o_global||`` of
  each head's compressed output; :func:`compress_model` ranks all heads of all global-attention
  mixers of a model together (as the paper ranks the whole model) and keeps the top
  ``retrieval_ratio`` global.

Cost: retrieval heads ``O(N^2 d)``, the others ``O(N k^2 d)`` (time and memory). What it saves
and costs on a demo-trained MixerFormer: ``docs/razor.md`` (``benchmarks/razor_tradeoff.py``).
"""
import math
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.band_attention import band_attention_2d, band_complement_mean
from ..ops.utils import IntPair, to_pair
from ..registry import MODELS
from .global_attention import GlobalSelfAttention


def default_retrieval_heads(num_heads: int, ratio: float) -> List[int]:
    """The first ``max(1, round(ratio * heads))`` heads (a mixer trained from scratch learns to
    use whichever heads are global)."""
    return list(range(max(1, min(num_heads, round(ratio * num_heads)))))


def compressed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         window_size: IntPair) -> torch.Tensor:
    """Window + compensation-token attention. q, k, v: ``(B, heads, H, W, d)`` -> same shape."""
    kh, kw = to_pair(window_size, 'window_size')
    radius = (kh // 2, kw // 2)
    k_hat, m = band_complement_mean(k, radius)
    v_hat, _ = band_complement_mean(v, radius)
    bias = torch.log(m.to(q.dtype))                          # -inf where m = 0: no token
    return band_attention_2d(q, k, v, radius, extra_key=k_hat, extra_value=v_hat,
                             extra_bias=bias[None, None])


@MODELS.register_module()
class RazorAttention(nn.Module):
    """Multi-head attention on ``(B, C, H, W)``: ``retrieval_heads`` global, the others window +
    compensation token. Parameter names are ``GlobalSelfAttention``'s (``qkv``, ``proj``), so a
    trained global mixer converts with :meth:`from_global`.

    Args:
        dim, num_heads: channels and heads.
        window_size: odd side(s) of the window of the non-retrieval heads.
        retrieval_heads: indices of the global heads; default :func:`default_retrieval_heads`.
        retrieval_ratio: the default's fraction of heads (the paper keeps about 15 %).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, window_size: IntPair = 7,
                 retrieval_heads: Optional[Sequence[int]] = None, retrieval_ratio: float = 0.15,
                 qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'RazorAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.window_size = to_pair(window_size, 'window_size')
        if any(s < 1 or s % 2 == 0 for s in self.window_size):
            raise ValueError(f'RazorAttention: window_size must be odd (a centred window), got '
                             f'{self.window_size}')
        if retrieval_heads is None:
            retrieval_heads = default_retrieval_heads(num_heads, retrieval_ratio)
        heads = sorted(set(int(h) for h in retrieval_heads))
        if any(not 0 <= h < num_heads for h in heads):
            raise ValueError(f'RazorAttention: retrieval_heads must lie in [0, {num_heads}), got '
                             f'{list(retrieval_heads)}')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        mask = torch.zeros(num_heads, dtype=torch.bool)
        mask[heads] = True
        self.register_buffer('retrieval_mask', mask)

    @property
    def retrieval_heads(self) -> List[int]:
        return self.retrieval_mask.nonzero().flatten().tolist()

    @classmethod
    def from_global(cls, mixer: nn.Module, retrieval_heads: Sequence[int],
                    window_size: IntPair = 7) -> 'RazorAttention':
        """The compressed copy of a trained ``GlobalSelfAttention`` (or ``RazorAttention``): same
        weights, ``retrieval_heads`` global, the others window + compensation token."""
        if not isinstance(mixer, (GlobalSelfAttention, RazorAttention)):
            raise TypeError('RazorAttention.from_global takes a GlobalSelfAttention or '
                            f'RazorAttention, got {type(mixer).__name__}')
        dim = mixer.qkv.in_features
        new = cls(dim, mixer.num_heads, window_size, retrieval_heads,
                  qkv_bias=mixer.qkv.bias is not None, proj_drop=mixer.proj_drop.p)
        weights = {k: v for k, v in mixer.state_dict().items() if k != 'retrieval_mask'}
        new.load_state_dict(weights, strict=False)
        return new.to(mixer.qkv.weight.device, mixer.qkv.weight.dtype)

    def _qkv(self, x: torch.Tensor):
        b, c, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        return qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)                       # B heads H W d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self._qkv(x)
        ret = self.retrieval_mask
        out = torch.empty_like(q)
        if bool(ret.any()):
            g = [t[:, ret].flatten(2, 3) for t in (q, k, v)]
            out[:, ret] = F.scaled_dot_product_attention(*g).view(b, -1, h, w, self.head_dim)
        if not bool(ret.all()):
            loc = ~ret
            out[:, loc] = compressed_attention(q[:, loc], k[:, loc], v[:, loc], self.window_size)
        out = self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c))
        return self.proj_drop(out).permute(0, 3, 1, 2)


@torch.no_grad()
def retrieval_head_scores(mixer: nn.Module, inputs: Iterable[torch.Tensor],
                          window_size: IntPair = 7) -> torch.Tensor:
    """Per head, ``||o_razor - o_global|| / ||o_global||`` of the head's attention output (before
    ``proj``) on calibration inputs ``(B, C, H, W)`` of the mixer: how badly a window plus one mean
    token stands in for the head's far context. Returns ``(heads,)``."""
    razor = RazorAttention.from_global(mixer, [], window_size)
    err = torch.zeros(razor.num_heads, dtype=torch.float64)
    ref = torch.zeros(razor.num_heads, dtype=torch.float64)
    for x in inputs:
        q, k, v = razor._qkv(x)
        full = F.scaled_dot_product_attention(*(t.flatten(2, 3) for t in (q, k, v)))
        comp = compressed_attention(q, k, v, razor.window_size).flatten(2, 3)
        err += (comp - full).double().pow(2).sum(dim=(0, 2, 3)).cpu()
        ref += full.double().pow(2).sum(dim=(0, 2, 3)).cpu()
    return (err / ref.clamp_min(1e-30)).sqrt()


def compress_model(model: nn.Module, calibration: Iterable, retrieval_ratio: float = 0.15,
                   window_size: IntPair = 7, forward=None) -> Dict[str, List[int]]:
    """Replace every ``GlobalSelfAttention`` / ``RazorAttention`` of ``model`` by its compressed
    ``RazorAttention``, in place.

    The calibration batches are run through the model (``forward(model, batch)``, default
    ``model(batch)``) with hooks that record each mixer's inputs; every head of every mixer is
    scored by :func:`retrieval_head_scores`, and the top ``retrieval_ratio`` of all heads
    (``ceil``, over the whole model) keep global attention.

    Returns:
        ``{module name: retrieval heads}`` of the replaced mixers.
    """
    if not 0 <= retrieval_ratio <= 1:
        raise ValueError(f'retrieval_ratio must lie in [0, 1], got {retrieval_ratio}')
    mixers = {name: m for name, m in model.named_modules()
              if isinstance(m, (GlobalSelfAttention, RazorAttention))}
    if not mixers:
        raise ValueError('compress_model: the model has no GlobalSelfAttention / RazorAttention')
    seen = {name: [] for name in mixers}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen[name].append(args[0]))
             for name, m in mixers.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in calibration:
                (forward or (lambda mdl, bt: mdl(bt)))(model, batch)
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    scores = [(float(s), name, h) for name, m in mixers.items()
              for h, s in enumerate(retrieval_head_scores(m, seen[name], window_size))]
    keep = math.ceil(retrieval_ratio * len(scores))
    chosen = {name: [] for name in mixers}
    for _, name, h in sorted(scores, reverse=True)[:keep]:
        chosen[name].append(h)
    for name, m in mixers.items():
        parent, _, attr = name.rpartition('.')
        setattr(model.get_submodule(parent) if parent else model, attr,
                RazorAttention.from_global(m, chosen[name], window_size))
    return {name: sorted(h) for name, h in chosen.items()}
