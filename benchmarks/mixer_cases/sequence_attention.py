"""Benchmark cases of the sequence-paper attentions made 2-D (issue 15, part B), with their peers:
a faithful re-run of the official pure-PyTorch formulation where one exists (Block Transformer's
prefix token decoder, RAT's scan + block-masked attention + log-sum-exp merge, CCA-Attention's
dense path, Lightning Attention's torch reference), written here from the facts of that code and
run with our weights; otherwise (Routing Transformer and Combiner: TensorFlow / JAX code; LS-
attention: no code) the dense reference, i.e. softmax attention with the full mask / matrix the
pattern implies. All peers are O(N^2) in memory except RAT's; they are meant for small grids.
"""
import math

import torch
import torch.nn.functional as F

from plugins.mixers.block_attention import BlockGlobalLocalAttention
from plugins.mixers.combiner import CombinerAttention
from plugins.mixers.core_context import CoreContextAwareAttention
from plugins.mixers.lightning import LightningAttention
from plugins.mixers.long_short import LongShortAttention
from plugins.mixers.rat import RATAttention, rope_2d
from plugins.mixers.routing_attention import RoutingAttention

from . import MixerCase


def _heads(t, num_heads):
    """``(B, N, heads * d) -> (B, heads, N, d)``."""
    b, n, _ = t.shape
    return t.view(b, n, num_heads, -1).transpose(1, 2)


def _to_map(m_proj, out, shape):
    """``(B, heads, N, d)`` -> output projection -> ``(B, C, H, W)``."""
    b, c, h, w = shape
    out = m_proj(out.transpose(1, 2).reshape(b, h * w, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


def _grid(h, w):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return ys.flatten(), xs.flatten()


# ------------------------------------------------------------------ Routing Transformer

def routing_dense_reference(m: RoutingAttention):
    """Every cluster as dense softmax attention over all N x N pairs with the mask
    [query in the cluster and key in the cluster]; each query averages its clusters' outputs
    (``/ (count + 1e-2)``, as the official scatter)."""
    def run(x):
        b, c, h, w = x.shape
        n, nh = h * w, m.num_heads
        qkv = m.qkv(x.flatten(2).transpose(1, 2)).view(b, n, -1, nh, m.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q = F.layer_norm(qkv[0], (m.head_dim,), eps=1e-6)
        k = q if m.share_qk else F.layer_norm(qkv[1], (m.head_dim,), eps=1e-6)
        v = qkv[-1]
        window = min(m.window_size or math.ceil(n / m.num_clusters), n)
        means = m.means.to(q.dtype)

        def members(t):  # B h c N
            idx = torch.einsum('bhnd,hcd->bhcn', t, means).topk(window, dim=-1).indices
            return torch.zeros(b, nh, means.shape[1], n, dtype=torch.bool,
                               device=x.device).scatter_(-1, idx, True)

        in_q = members(q)
        in_k = in_q if m.share_qk else members(k)
        logits = (q @ k.transpose(-1, -2) * m.scale).unsqueeze(2)             # B h 1 N N
        logits = logits.masked_fill(~(in_k[..., None, :] & in_q[..., :, None] |
                                      ~in_q[..., :, None]), float('-inf'))
        out = logits.softmax(-1) @ v.unsqueeze(2)                             # B h c N d
        out = (out * in_q[..., None]).sum(2) / (in_q.sum(2, keepdim=True).transpose(-1, -2)
                                                  + m.scatter_eps)
        return _to_map(m.proj, out, x.shape)
    return run


# ------------------------------------------------------------------ Block Transformer

def block_prefix_decoder_formulation(m: BlockGlobalLocalAttention):
    """The official ``prefix`` token decoder: each block's decoder input is the sequence
    ``[r prefix tokens; p^2 tokens]`` (prefix = ``expansion_layer`` of the block's context),
    self-attention runs over all of it (padded tokens masked as keys), the prefix outputs are
    dropped; block embeddings are the concatenated tokens (lookup embedder), contexts one
    attention layer of the block decoder with its residual."""
    def run(x):
        b, c, h, w = x.shape
        ph, pw = m.block_size
        hp, wp = h + (-h) % ph, w + (-w) % pw
        t = F.pad(x, (0, wp - w, 0, hp - h)).permute(0, 2, 3, 1)
        gh, gw = hp // ph, wp // pw
        blocks = t.reshape(b, gh, ph, gw, pw, c).permute(0, 1, 3, 2, 4, 5).reshape(
            b * gh * gw, ph * pw, c)
        valid = torch.zeros(hp, wp, dtype=torch.bool, device=x.device)
        valid[:h, :w] = True
        valid = valid.reshape(gh, ph, gw, pw).permute(0, 2, 1, 3).reshape(gh * gw, ph * pw)
        nb = gh * gw
        if m.embed is not None:
            e = m.embed(blocks.reshape(b, nb, -1))
        else:
            e = blocks.view(b, nb, ph * pw, c).sum(2) / valid.sum(-1, keepdim=True)
        gq, gk, gv = (_heads(z, m.num_heads) for z in m.global_qkv(e).chunk(3, -1))
        g = F.scaled_dot_product_attention(gq, gk, gv).transpose(1, 2).reshape(b, nb, c)
        prefix = m.expand(e + m.global_proj(g)).reshape(b * nb, m.num_prefix, c)
        seq = torch.cat([prefix, blocks], 1)                                  # (B nB) r+p^2 C
        q, k, v = (_heads(z, m.num_heads) for z in m.qkv(seq).chunk(3, -1))
        keys = torch.cat([torch.ones(nb, m.num_prefix, dtype=torch.bool, device=x.device),
                          valid], 1).repeat(b, 1)[:, None, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)[:, :, m.num_prefix:]
        out = m.proj(out.transpose(1, 2).reshape(b, gh, gw, ph, pw, c))
        out = out.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)[:, :h, :w]
        return out.permute(0, 3, 1, 2)
    return run


# ------------------------------------------------------------------ Combiner

def _exclusive_cummax(t, dim, reverse):
    if reverse:
        return _exclusive_cummax(t.flip(dim), dim, False).flip(dim)
    run = torch.cummax(t, dim).values
    return torch.cat([torch.zeros_like(t.narrow(dim, 0, 1)), run.narrow(dim, 0, t.shape[dim] - 1)],
                     dim)


def combiner_dense_reference(m: CombinerAttention):
    """The explicit N x N attention matrix of the factorisation (direct keys, and every
    abstraction's weight spread over its part by its local softmax over the part's keys), times
    V. Parts: ``fixed``: every window, seen by every query; ``axial``: for every (row r, column
    c') the column part above / below r, seen from row r, and for every (row r', column c) the
    row part left / right of c, seen from column c."""
    def run(x):
        b, c, h, w = x.shape
        n, nh, d = h * w, m.num_heads, m.head_dim
        q, k, v = (_heads(z, nh) for z in m.qkv(x.flatten(2).transpose(1, 2)).chunk(3, -1))
        q = q * d ** -0.5
        ys, xs = _grid(h, w)
        neg = float('-inf')
        if m.mode == 'fixed':
            wid = (ys // m.window_size[0]) * (-(-w // m.window_size[1])) + xs // m.window_size[1]
            member = wid[None, :] == torch.unique(wid)[:, None]                # P N
            q_pool = torch.stack([q[:, :, sel].amax(2) for sel in member], 2)  # B h P d
            k_pool = torch.stack([k[:, :, sel].amax(2) for sel in member], 2)
            visible = torch.ones(n, len(member), dtype=torch.bool)
            direct = wid[:, None] == wid[None]
        else:
            qm, km = q.view(b, nh, h, w, d), k.view(b, nh, h, w, d)
            members, visibles, q_pools, k_pools = [], [], [], []
            for dim, reverse in ((2, False), (2, True), (3, False), (3, True)):
                # part p = (r, c) of the map grid: along dim 2 it holds column c beyond row r,
                # along dim 3 row r beyond column c
                along, across = (ys, xs) if dim == 2 else (xs, ys)
                beyond = along[None] > along[:, None] if reverse else along[None] < along[:, None]
                members.append(beyond & (across[None] == across[:, None]))
                visibles.append((along[:, None] == along[None]) & members[-1].any(-1)[None])
                q_pools.append(_exclusive_cummax(qm, dim, reverse).reshape(b, nh, n, d))
                k_pools.append(_exclusive_cummax(km, dim, reverse).reshape(b, nh, n, d))
            member, visible = torch.cat(members), torch.cat(visibles, 1)
            q_pool, k_pool = torch.cat(q_pools, 2), torch.cat(k_pools, 2)
            direct = ((ys[:, None] == ys[None]) | (xs[:, None] == xs[None]))
        inner = (q_pool @ k.transpose(-1, -2)).masked_fill(~member, neg).softmax(-1)
        inner = torch.nan_to_num(inner)  # empty parts: never visible
        logits = torch.cat([(q @ k.transpose(-1, -2)).masked_fill(~direct, neg),
                            (q @ k_pool.transpose(-1, -2)).masked_fill(~visible, neg)], -1)
        p = logits.softmax(-1)
        a = p[..., :n] + p[..., n:] @ inner                                   # B h N N
        return _to_map(m.proj, a @ v, x.shape)
    return run


# ------------------------------------------------------------------ RAT

def rat_official_formulation(m: RATAttention):
    """The official layer's computation on windows: ``ascan`` (the gated recurrence, here a loop
    over the chunk's positions), chunk-end states as summaries, attention over the summaries with
    a block mask (here: every other window) returning its log-sum-exp, the own-state logit, and
    ``merge_last_token``'s log-sum-exp merge."""
    def run(x):
        b, c, h, w = x.shape
        nh, hd, gd = m.num_heads, m.head_dim, m.num_groups * m.head_dim
        wh, ww = m.window_size
        hp, wp = h + (-h) % wh, w + (-w) % ww
        gh, gw = hp // wh, wp // ww
        z, xv, g, q, k = m.in_proj(x.permute(0, 2, 3, 1)).split([c, c, c, gd, gd], -1)
        q, k = q.repeat(1, 1, 1, nh // m.num_groups), k.repeat(1, 1, 1, nh // m.num_groups)
        g = torch.sigmoid(g + m.gate_bias)

        def chunks(t):  # B H W C -> B nW L C (zero padded)
            t = F.pad(t, (0, 0, 0, wp - w, 0, hp - h))
            return t.reshape(b, gh, wh, gw, ww, -1).permute(0, 1, 3, 2, 4, 5).reshape(
                b, gh * gw, wh * ww, -1)

        valid = chunks(torch.ones(1, h, w, 1, device=x.device)).bool()[0]     # nW L 1
        xv, k, g, q = chunks(xv), chunks(k), chunks(g), chunks(q)
        state = torch.zeros(b, gh * gw, 2 * c, dtype=x.dtype, device=x.device)
        states = []
        for t in range(wh * ww):  # ascan: h_t = g_t h_{t-1} + (1 - g_t) [x_t; k_t]
            gt = torch.cat([g[:, :, t], g[:, :, t]], -1)
            new = gt * state + (1 - gt) * torch.cat([xv[:, :, t], k[:, :, t]], -1)
            state = torch.where(valid[:, t], new, state)                      # skip padding
            states.append(state)
        states = torch.stack(states, 2)                                       # B nW L 2C
        nw, length = gh * gw, wh * ww

        def heads(t):  # B nW L C -> B h (nW L) d
            return t.reshape(b, nw * length, nh, hd).transpose(1, 2)

        intra_x, intra_k, qh = heads(states[..., :c]), heads(states[..., c:]), heads(q)
        sum_k = intra_k.view(b, nh, nw, length, hd)[:, :, :, -1]
        sum_x = intra_x.view(b, nh, nw, length, hd)[:, :, :, -1]
        q_rot = qh
        if m.rope:
            rows, cols = torch.arange(nw) // gw, torch.arange(nw) % gw
            q_rot = rope_2d(qh.view(b, nh, nw, length, hd).transpose(2, 3), rows, cols,
                            m.rope_base).transpose(2, 3).reshape(b, nh, nw * length, hd)
            sum_k = rope_2d(sum_k, rows, cols, m.rope_base)
        scale = hd ** -0.5
        other = torch.arange(nw).repeat_interleave(length)[:, None] != torch.arange(nw)[None]
        logits = (q_rot @ sum_k.transpose(-1, -2) * scale).masked_fill(~other, float('-inf'))
        inter_lse = torch.logsumexp(logits, -1)
        inter_out = torch.nan_to_num(logits.softmax(-1)) @ sum_x
        intra_lse = (qh * intra_k).sum(-1) * scale
        max_lse = torch.maximum(inter_lse, intra_lse)
        inter_w, intra_w = torch.exp(inter_lse - max_lse), torch.exp(intra_lse - max_lse)
        out = (inter_out * inter_w[..., None] + intra_x * intra_w[..., None]) / \
            (inter_w + intra_w)[..., None]
        out = out.transpose(1, 2).reshape(b, gh, gw, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(b, hp, wp, c)[:, :h, :w]
        return m.out_proj(torch.sigmoid(z) * out).permute(0, 3, 1, 2)
    return run


# ------------------------------------------------------------------ CCA-Attention

def cca_dense_formulation(m: CoreContextAwareAttention):
    """The official dense path (``pooling_attention_wo_cache`` with ``generate_mask``): SDPA over
    ``[core tokens; all tokens]`` with one ``(N, G + N)`` mask (here the 2-D partition)."""
    def run(x):
        b, c, h, w = x.shape
        nh, hd = m.num_heads, m.head_dim
        q, k, v = (_heads(z, nh) for z in m.qkv(x.flatten(2).transpose(1, 2)).chunk(3, -1))
        ys, xs = _grid(h, w)
        gw = -(-w // m.group_size[1])
        wy, wx = ys // m.group_size[0], xs // m.group_size[1]
        gid = wy * gw + wx
        groups = torch.unique(gid)
        member = gid[None] == groups[:, None]                                 # G N
        q_rep = (member.to(q.dtype) @ q) / member.sum(-1, keepdim=True)      # B h G d
        weights = (q_rep @ k.transpose(-1, -2) * hd ** -0.5).masked_fill(
            ~member, float('-inf')).softmax(-1)
        core_k, core_v = weights @ k, weights @ v
        gy, gx = groups // gw, groups % gw
        r = m.local_radius
        near = ((wy[:, None] - wy[None]).abs() <= r) & ((wx[:, None] - wx[None]).abs() <= r)
        far = ((wy[:, None] - gy[None]).abs() > r) | ((wx[:, None] - gx[None]).abs() > r)
        out = F.scaled_dot_product_attention(q, torch.cat([core_k, k], 2),
                                             torch.cat([core_v, v], 2),
                                             attn_mask=torch.cat([far, near], 1))
        return _to_map(m.proj, out, x.shape)
    return run


# ------------------------------------------------------------------ LS-attention

def ls_dense_reference(m: LongShortAttention):
    """SDPA over all tokens with a per-head mask: the truncated band for local heads, nothing
    masked for global heads."""
    def run(x):
        b, c, h, w = x.shape
        q, k, v = (_heads(z, m.num_heads) for z in m.qkv(x.flatten(2).transpose(1, 2)).chunk(3, -1))
        ys, xs = _grid(h, w)
        r = m.local_radius
        band = ((ys[:, None] - ys[None]).abs() <= r) & ((xs[:, None] - xs[None]).abs() <= r)
        local = torch.arange(m.num_heads) < m.num_local_heads
        mask = band[None] | ~local[:, None, None]
        return _to_map(m.proj, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), x.shape)
    return run


# ------------------------------------------------------------------ Lightning Attention

def lightning_torch_reference(m: LightningAttention):
    """The official torch reference ``linear_attn``: ``[(Q K^T) * M] V`` with the full decay mask
    (here the symmetric ``lambda^|i-j|``), inside TransNormerLLM's layer."""
    def run(x):
        b, c, h, w = x.shape
        n = h * w
        t = x.flatten(2).transpose(1, 2)
        q, k, v = (_heads(z, m.num_heads) for z in F.silu(m.qkv(t)).chunk(3, -1))
        i = torch.arange(n, dtype=x.dtype)
        mask = torch.exp(-m.slope_rate.to(x.dtype)[:, None, None] *
                         (i[:, None] - i[None]).abs())
        out = ((q @ k.transpose(-1, -2)) * mask) @ v
        out = m.norm(out.transpose(1, 2).reshape(b, n, c))
        out = m.o_proj(out * torch.sigmoid(m.output_gate(t)))
        return out.transpose(1, 2).reshape(b, c, h, w)
    return run


CASES = [
    MixerCase('RoutingAttention c16', 'Routing Transformer (2003.05997)',
              lambda dim, heads: RoutingAttention(dim, heads, num_clusters=16), 'quadratic',
              'dense per-cluster masked attention (official code is TensorFlow)',
              routing_dense_reference,
              note='w = N / c tokens per cluster: cost tokens^2 / c; training mode (EMA update)'),
    MixerCase('BlockGlobalLocalAttention p2 r2', 'Block Transformer (2406.02657)',
              lambda dim, heads: BlockGlobalLocalAttention(dim, heads, block_size=2,
                                                           num_prefix=2),
              'quadratic', 'official prefix token-decoder formulation',
              block_prefix_decoder_formulation,
              note='global stage over tokens / 4 block embeddings: cost tokens^2 / 16'),
    MixerCase('CombinerAttention fixed p7', 'Combiner (2107.05768)',
              lambda dim, heads: CombinerAttention(dim, heads, mode='fixed', window_size=7),
              'quadratic', 'dense factorised attention matrix (official code is TF / JAX)',
              combiner_dense_reference,
              note='one abstraction per 7x7 window: cost tokens^2 / 49'),
    MixerCase('CombinerAttention axial', 'Combiner (2107.05768)',
              lambda dim, heads: CombinerAttention(dim, heads, mode='axial'),
              'quadratic', 'dense factorised attention matrix (official code is TF / JAX)',
              combiner_dense_reference,
              note='cost tokens x (H + W); the dense peer holds 4 N^2 spread weights'),
    MixerCase('RATAttention p8', 'RAT (2507.04416)',
              lambda dim, heads: RATAttention(dim, heads, window_size=8), 'quadratic',
              'official scan + chunk attention + log-sum-exp merge formulation',
              rat_official_formulation,
              note='attention over tokens / 64 chunk summaries: cost tokens^2 / 64'),
    MixerCase('CoreContextAwareAttention p4 r1', 'CCA-Attention (2412.12465)',
              lambda dim, heads: CoreContextAwareAttention(dim, heads, group_size=4,
                                                           local_radius=1),
              'quadratic', 'official dense path (SDPA over [core tokens; tokens] + mask)',
              cca_dense_formulation,
              note='core tokens of 4x4 groups: cost tokens^2 / 16'),
    MixerCase('LongShortAttention r3', 'LS-attention (2505.15548)',
              lambda dim, heads: LongShortAttention(dim, heads, local_radius=3), 'quadratic',
              'dense per-head masked SDPA (no official code)', ls_dense_reference,
              note='num_heads // 4 (at least 1) global heads are quadratic'),
    MixerCase('LightningAttention B64', 'Lightning Attention (2405.17381)',
              lambda dim, heads: LightningAttention(dim, heads, block_size=64), 'linear',
              'official torch reference linear_attn (dense decay mask)',
              lightning_torch_reference),
]
