"""Direct attention plus region abstractions in one softmax, as a 2-D token mixer. Paper: Ren,
Dai, Dai, Yang, Leskovec, Schuurmans, Dai, "Combiner: Full Attention Transformer with Sparse
Computation Cost" (NeurIPS 2021, arXiv 2107.05768).

Every query gets full support: a few keys directly, every other key through a region abstraction,
whose attention weight is split inside the region by a local softmax (the paper's "local
factorization"). All direct and abstraction logits share one softmax. Official code: google-research
``combiner/tf/approx_attention.py`` (``sqrt_fixed_full``, ``axial_mixture_bidir``); the query is
pre-scaled by ``d^-0.5`` (``attention.get_qkv``), abstractions are max-pooled
(``local_summary='identity-max'``).

``mode='fixed'`` (Combiner-Fixed, ``sqrt_fixed_full``), on ``p x p`` windows:
query ``i`` attends directly to its window's tokens and to the abstraction of *every* window
(``causal=False`` in the official call: the own window's abstraction included). The abstraction of
window ``s`` is ``k_s = maxpool(K_s)`` with value ``v_s = sum_j softmax_j(maxpool(Q_s) . k_j) v_j``.
Any H, W: padding is masked in the windows, the pooling and the local softmax. Cost
``O(N (p^2 + N / p^2) d)`` (``O(N^1.5 d)`` at ``p^2 = sqrt(N)``).

``mode='axial'`` (Combiner-Axial, ``axial_mixture_bidir``), on the image's own rows and
columns: query ``(r, c)`` attends directly to its row and its column, and to four sets of
directional abstractions: for every column ``c'``, the part above row ``r`` and the part below it;
for every row ``r'``, the part left of column ``c`` and the part right of it. The abstraction of a
part ``S`` has key ``cummax_S(K)`` and value ``sum_{j in S} softmax_j(cummax_S(Q) . k_j) v_j``.
Cost ``O(N (H + W) d)``.

Choices where the official code is loose (documented, exact against the dense reference):

* axial summaries use the exclusive cumulative *max* the paper specifies; the official code
  approximates it with a cumulative sum (``approx_cummax``), which grows with position;
* an empty part (nothing above the first row, ...) is masked: the official code leaves a zero key
  whose value is a uniform average;
* the query's own token, in both its row and its column, is kept once (masked in the column, the
  ``TODO: add self-mask`` of the official code).
"""
import torch
import torch.nn as nn

from ..ops.joint_attention import joint_softmax_attention, merge_padded_windows, padded_windows
from ..ops.utils import to_pair
from ..registry import MODELS

NEG_INF = float('-inf')


def _exclusive_cummax(x: torch.Tensor, dim: int, reverse: bool = False) -> torch.Tensor:
    """``y_t = max_{s < t} x_s`` along ``dim`` (``s > t`` with ``reverse``); 0 where empty."""
    if reverse:
        return _exclusive_cummax(x.flip(dim), dim).flip(dim)
    running = torch.cummax(x, dim=dim).values
    return torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)),
                      running.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)


def _strict_order_mask(n: int, reverse: bool, device) -> torch.Tensor:
    """``(n, n)`` bool, ``[t, s] = s < t`` (``s > t`` with ``reverse``), plus ``[t, t]`` where the
    row would be empty, so that an empty part's (unused, masked) value stays finite."""
    t, s = torch.arange(n, device=device)[:, None], torch.arange(n, device=device)[None]
    allowed = s > t if reverse else s < t
    return allowed | ((t == s) & ~allowed.any(-1, keepdim=True))


def _part_nonempty(n: int, reverse: bool, device) -> torch.Tensor:
    """``(n,)`` bool: the part before (after, with ``reverse``) position ``t`` holds a token."""
    t = torch.arange(n, device=device)
    return t < n - 1 if reverse else t > 0


@MODELS.register_module()
class CombinerAttention(nn.Module):
    """Combiner attention (Fixed or Axial factorisation) on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C; num_heads: heads (C divisible by it).
        mode: ``'fixed'`` (windows and window abstractions) or ``'axial'`` (rows, columns and
            directional abstractions).
        window_size: window side(s) ``p`` of ``'fixed'`` (unused by ``'axial'``).
        qkv_bias, proj_drop.
    """

    def __init__(self, dim: int, num_heads: int = 8, mode: str = 'fixed', window_size=7,
                 qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'CombinerAttention: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        if mode not in ('fixed', 'axial'):
            raise ValueError(f"CombinerAttention: mode must be 'fixed' or 'axial', got {mode!r}")
        self.window_size = to_pair(window_size, 'window_size')
        if min(self.window_size) < 1:
            raise ValueError(f'CombinerAttention: window_size must be >= 1, '
                             f'got {self.window_size}')
        self.dim, self.num_heads, self.head_dim, self.mode = dim, num_heads, dim // num_heads, mode
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)  # each B heads H W d
        q = q * self.head_dim ** -0.5  # the official get_qkv scales the query, then pools it
        out = self._fixed(q, k, v) if self.mode == 'fixed' else self._axial(q, k, v)
        out = self.proj_drop(self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)))
        return out.permute(0, 3, 1, 2)

    def _fixed(self, q, k, v):
        """Combiner-Fixed on windows: ``(B, heads, H, W, d)`` each, ``q`` pre-scaled."""
        size = q.shape[2:4]
        (qw, valid), (kw, _), (vw, _) = (padded_windows(t, self.window_size) for t in (q, k, v))
        pad = ~valid[:, :, None]                                              # nW L 1
        q_pool = qw.masked_fill(pad, NEG_INF).amax(-2, keepdim=True)          # B h nW 1 d
        k_pool = kw.masked_fill(pad, NEG_INF).amax(-2)                        # B h nW d
        # abstraction value: the window's values under the pooled query's softmax
        v_pool = joint_softmax_attention(q_pool, [(kw, vw, valid[:, None, :])], 1.0)[..., 0, :]
        key_valid = valid[:, None, :]
        out = joint_softmax_attention(qw, [(kw, vw, key_valid),
                                           (k_pool.unsqueeze(2), v_pool.unsqueeze(2), None)], 1.0)
        return merge_padded_windows(out, self.window_size, size)

    def _axial(self, q, k, v):
        """Combiner-Axial (bidirectional) on rows and columns, ``q`` pre-scaled."""
        h, w = q.shape[2:4]
        dev = q.device
        # direct keys: the query's row (W keys) and column (H keys, its own token masked)
        row = torch.einsum('bhrcd,bhred->bhrce', q, k)                        # B h H W W
        col = torch.einsum('bhrcd,bhscd->bhrcs', q, k)                        # B h H W H
        col = col.masked_fill(torch.eye(h, dtype=torch.bool, device=dev)[:, None, :], NEG_INF)
        logits, values = [row, col], []
        # column parts above / below each row; row parts left / right of each column
        for dim, reverse in ((2, False), (2, True), (3, False), (3, True)):
            n = q.shape[dim]
            q_part = _exclusive_cummax(q, dim, reverse)
            k_part = _exclusive_cummax(k, dim, reverse)
            inner = _strict_order_mask(n, reverse, dev)
            if dim == 2:  # value of column c' above/below row r: softmax over rows s of c'
                a = torch.einsum('bhrcd,bhscd->bhcrs', q_part, k)
                a = torch.softmax(a.masked_fill(~inner, NEG_INF), -1)
                values.append(torch.einsum('bhcrs,bhscd->bhrcd', a, v))
                # query (r, c) against the parts of every column c' at its row r
                logit = torch.einsum('bhrcd,bhred->bhrce', q, k_part)         # B h H W W
                logit = logit.masked_fill(~_part_nonempty(n, reverse, dev)[:, None, None],
                                          NEG_INF)
            else:  # value of row r' left/right of column c: softmax over columns e of r'
                a = torch.einsum('bhrcd,bhred->bhrce', q_part, k)
                a = torch.softmax(a.masked_fill(~inner, NEG_INF), -1)
                values.append(torch.einsum('bhrce,bhred->bhrcd', a, v))
                logit = torch.einsum('bhrcd,bhscd->bhrcs', q, k_part)         # B h H W H
                logit = logit.masked_fill(~_part_nonempty(n, reverse, dev)[:, None], NEG_INF)
            logits.append(logit)
        sizes = [t.shape[-1] for t in logits]
        p_row, p_col, p_up, p_down, p_left, p_right = torch.softmax(
            torch.cat(logits, -1), -1).split(sizes, -1)
        out = torch.einsum('bhrce,bhred->bhrcd', p_row, v)
        out = out + torch.einsum('bhrcs,bhscd->bhrcd', p_col, v)
        out = out + torch.einsum('bhrce,bhred->bhrcd', p_up, values[0])
        out = out + torch.einsum('bhrce,bhred->bhrcd', p_down, values[1])
        out = out + torch.einsum('bhrcs,bhscd->bhrcd', p_left, values[2])
        return out + torch.einsum('bhrcs,bhscd->bhrcd', p_right, values[3])
