"""CATANet: Efficient Content-Aware Token Aggregation for Lightweight Image Super-Resolution.

Liu et al., CVPR 2025, arXiv 2503.06896. Each of the 8 blocks pairs

- a Token-Aggregation Block (TAB): tokens are assigned to the nearest of ``num_tokens`` shared
  token centres (cosine similarity), sorted by centre and cut into groups of ``group_size``;
  queries of a group attend to keys/values of their group and the next (intra-group
  self-attention, IASA) and to keys/values made from the centres (inter-group cross-attention,
  IRCA). The centres are refined by k-means steps and tracked by an EMA **during training only**
  (buffer ``centers``); at test time the stored centres are used as they are (Sec. 3.2);
- a Local-Region Self-Attention (LRSA): full attention inside overlapping ``patch_size`` patches
  (stride ``patch_size - 2``), averaged back, then a ConvFFN;

then a 3x3 conv and a residual. The image is reconstructed by pixel shuffle and added to the
bilinear upsampling of the input.

Checkpoints of the official release (EquationWalker/CATANet) load through
``plugins.utils.convert_catanet``; with the same weights the output equals the official code's.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from plugins.registry import MODELS
from .net_base import SRNetwork


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` over the last two dims (what SDPA computes, without its
    CPU math path's masked-row checks, which cost a third of CATANet's training step on CPU)."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v)
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    return attn.softmax(-1) @ v


class ConvFFN(nn.Module):
    """``fc1 -> GELU -> (+ GELU(dwconv5x5)) -> fc2`` on tokens (B, N, C) of an (H, W) map."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, kernel_size, 1, kernel_size // 2,
                                groups=hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.act(self.fc1(x))
        b, n, c = x.shape
        local = x.transpose(1, 2).reshape(b, c, *hw)  # b (h w) c -> b c h w
        local = F.gelu(self.dwconv(local)).flatten(2).transpose(1, 2)
        return self.fc2(x + local)


def mirror_tail(x: torch.Tensor, count: int) -> torch.Tensor:
    """The last ``count`` tokens of x (B, N, C) in reverse order (wrapping when count > N):
    the padding the official code uses to fill the last group."""
    n = x.shape[1]
    idx = n - 1 - torch.arange(count, device=x.device) % n
    return x[:, idx]


def refine_centers(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """One k-means step on the unit sphere (the official ``center_iter``).

    ``x`` (B, N, C) and ``centers`` (M, C) L2-normalised: each token goes to its most similar
    centre, each centre becomes the normalised sum of its tokens over the batch; a centre with no
    token keeps its value.
    """
    b, n, c = x.shape
    m = centers.shape[0]
    assign = torch.einsum('bnc,mc->bnm', x, centers).argmax(-1)  # (B, N)
    sums = x.new_zeros(b, m, c).scatter_add_(1, assign.unsqueeze(-1).expand(-1, -1, c), x)
    sums = F.normalize(sums.sum(0), dim=-1)
    counts = torch.zeros(m, dtype=torch.long, device=x.device).scatter_add_(
        0, assign.flatten(), torch.ones_like(assign.flatten()))
    return torch.where((counts == 0).unsqueeze(-1), centers, sums)


class IntraGroupAttention(nn.Module):
    """IASA + IRCA: groups of sorted tokens attend to their group and the next one, and to the
    keys/values of the token centres; outputs are summed and put back in image order."""

    def __init__(self, dim: int, qk_dim: int, num_heads: int, group_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.group_size = group_size
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        # b g s (h d) -> b g h s d
        b, g, s, hd = t.shape
        return t.reshape(b, g, s, self.num_heads, hd // self.num_heads).transpose(2, 3)

    def forward(self, x: torch.Tensor, order: torch.Tensor, k_centers: torch.Tensor,
                v_centers: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        gather = order.unsqueeze(-1)
        q = torch.gather(self.to_q(x), 1, gather.expand(-1, -1, self.to_q.out_features))
        k = torch.gather(self.to_k(x), 1, gather.expand(-1, -1, self.to_k.out_features))
        v = torch.gather(self.to_v(x), 1, gather.expand(-1, -1, c))
        gs = min(n, self.group_size)
        ng = -(-n // gs)
        pad = ng * gs - n
        q = torch.cat([q, mirror_tail(q, pad)], 1).reshape(b, ng, gs, -1)
        # keys/values of group i: sorted tokens [i*gs, (i+2)*gs), the tail mirrored
        k = torch.cat([k, mirror_tail(k, pad + gs)], 1).reshape(b, ng + 1, gs, -1)
        v = torch.cat([v, mirror_tail(v, pad + gs)], 1).reshape(b, ng + 1, gs, -1)
        k = torch.cat([k[:, :-1], k[:, 1:]], 2)
        v = torch.cat([v[:, :-1], v[:, 1:]], 2)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # b g h s d
        out = attention(q, k, v)  # intra-group (IASA)
        kc = k_centers.expand(b, ng, -1, -1, -1)  # h m d -> b g h m d
        vc = v_centers.expand(b, ng, -1, -1, -1)
        out = out + attention(q, kc, vc)  # to the centres (IRCA)
        out = out.transpose(2, 3).reshape(b, ng * gs, c)[:, :n]
        out = torch.empty_like(out).scatter_(1, gather.expand(-1, -1, c), out)  # unsort
        return self.proj(out)


class TokenAggregationBlock(nn.Module):
    """TAB (Sec. 3.2): content-aware token aggregation with centres updated in training only."""

    def __init__(self, dim: int, qk_dim: int, mlp_dim: int, num_heads: int, n_iter: int,
                 num_tokens: int, group_size: int, center_momentum: float = 0.999) -> None:
        super().__init__()
        self.n_iter = n_iter
        self.num_tokens = num_tokens
        self.num_heads = num_heads
        self.center_momentum = center_momentum
        self.norm = nn.LayerNorm(dim)
        self.center_k = nn.Linear(dim, qk_dim, bias=False)  # IRCA's keys and values of centres
        self.center_v = nn.Linear(dim, dim, bias=False)
        self.attn = IntraGroupAttention(dim, qk_dim, num_heads, group_size)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, mlp_dim)
        self.register_buffer('centers', torch.randn(num_tokens, dim))
        self.register_buffer('centers_initialized', torch.tensor(False))

    def initial_centers(self, x: torch.Tensor) -> torch.Tensor:
        """Before any training step: means of ``num_tokens`` consecutive chunks of tokens."""
        n = x.shape[1]
        pad = self.num_tokens - n % self.num_tokens
        x = torch.cat([x, mirror_tail(x, pad)], 1)
        # b (m s) c -> m (b s) c, mean over (b s)
        chunks = x.reshape(x.shape[0], self.num_tokens, -1, x.shape[-1])
        return chunks.mean(dim=(0, 2)).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # b c h w -> b (h w) c
        shortcut = x
        x = self.norm(x)
        if bool(self.centers_initialized):
            centers = self.centers.detach()
        else:
            centers = self.initial_centers(x)
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_iter - 1):
                    centers = refine_centers(F.normalize(x, dim=-1), F.normalize(centers, dim=-1))
            # the last step keeps its graph: the centres' keys/values learn through it
            centers = refine_centers(F.normalize(x, dim=-1), F.normalize(centers, dim=-1))
        heads = self.num_heads
        k_centers = self.center_k(centers).reshape(-1, heads, self.center_k.out_features //
                                                   heads).transpose(0, 1)  # m (h d) -> h m d
        v_centers = self.center_v(centers).reshape(-1, heads, c // heads).transpose(0, 1)
        centers = centers.detach()
        with torch.no_grad():
            sim = torch.einsum('bnc,mc->bnm', F.normalize(x, dim=-1),
                               F.normalize(centers, dim=-1))
            order = torch.argsort(sim.argmax(-1), dim=-1)  # tokens grouped by centre
        y = self.attn(x, order, k_centers, v_centers)
        y = self.proj(y.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        x = shortcut + y
        x = x + self.ffn(self.ffn_norm(x), (h, w))
        if self.training:
            with torch.no_grad():
                if bool(self.centers_initialized):
                    self.centers.mul_(self.center_momentum).add_(
                        centers, alpha=1 - self.center_momentum)
                else:
                    self.centers.copy_(centers)
                    self.centers_initialized.fill_(True)
        return x.transpose(1, 2).reshape(b, c, h, w)


def patch_grid(length: int, patch: int) -> Tuple[List[int], torch.Tensor]:
    """Start offsets of LRSA's overlapping patches along one dimension (stride ``patch - 2``,
    the last one flush with the border) and the divisor of each position when the patches are
    put back, both as the official ``patch_divide`` / ``patch_reverse`` compute them."""
    if length <= patch:
        return [0], torch.ones(length)
    step = patch - 2
    starts = [min(i, length - patch) for i in range(0, length + step - patch, step)]
    divisor = torch.ones(length)
    for i in range(step, length + step - patch, step):
        top = length - patch if i + patch > length else i
        divisor[top:i + patch - step] *= 2
    return starts, divisor


class LocalRegionAttention(nn.Module):
    """LRSA: self-attention in overlapping patches (averaged back), then a ConvFFN."""

    def __init__(self, dim: int, qk_dim: int, mlp_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, mlp_dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        def heads(t):  # b n (h d) -> b h n d
            return t.reshape(t.shape[0], t.shape[1], self.num_heads, -1).transpose(1, 2)
        q, k, v = heads(self.to_q(x)), heads(self.to_k(x)), heads(self.to_v(x))
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(x.shape))

    def forward(self, x: torch.Tensor, patch_size: int) -> torch.Tensor:
        b, c, h, w = x.shape
        ph, pw = min(patch_size, h), min(patch_size, w)
        tops, row_div = patch_grid(h, ph)
        lefts, col_div = patch_grid(w, pw)
        rows = (torch.tensor(tops)[:, None] + torch.arange(ph)).to(x.device)  # (nh, ph)
        cols = (torch.tensor(lefts)[:, None] + torch.arange(pw)).to(x.device)  # (nw, pw)
        index = (rows[:, None, :, None] * w + cols[None, :, None, :])  # (nh, nw, ph, pw)
        nh, nw = len(tops), len(lefts)
        patches = x.flatten(2)[:, :, index.flatten()]  # b c (nh nw ph pw)
        patches = patches.reshape(b, c, nh * nw, ph * pw).permute(0, 2, 3, 1)
        patches = patches.reshape(b * nh * nw, ph * pw, c)
        patches = patches + self.attention(self.attn_norm(patches))
        patches = patches.reshape(b, nh * nw * ph * pw, c).transpose(1, 2)
        merged = x.new_zeros(b, c, h * w).index_add_(2, index.flatten(), patches)
        divisor = (row_div[:, None] * col_div[None, :]).to(x)
        x = merged.reshape(b, c, h, w) / divisor
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.ffn(self.ffn_norm(tokens), (h, w))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class CATABlock(nn.Module):
    """TAB -> LRSA -> conv3x3, with a residual around the three."""

    def __init__(self, dim, qk_dim, mlp_dim, num_heads, n_iter, num_tokens, group_size,
                 patch_size) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.tab = TokenAggregationBlock(dim, qk_dim, mlp_dim, num_heads, n_iter, num_tokens,
                                         group_size)
        self.lrsa = LocalRegionAttention(dim, qk_dim, mlp_dim, num_heads)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.lrsa(self.tab(x), self.patch_size))


@MODELS.register_module()
class CATANet(SRNetwork):
    """CATANet (x2/x3/x4: 477,435 / 549,635 / 535,195 parameters with the default ``arch``).

    Args:
        upscale: 2, 3 or 4 (1: same-size restoration, no upsampler).
        in_channels: image channels.
        dim, qk_dim, mlp_dim, num_heads: widths of the blocks (paper: 40, 36, 96, 4).
        n_iters, num_tokens, group_sizes, patch_sizes: one entry per block (8 blocks).
    """
    converter = 'catanet'

    def __init__(self,
                 upscale: int = 2,
                 in_channels: int = 3,
                 dim: int = 40,
                 qk_dim: int = 36,
                 mlp_dim: int = 96,
                 num_heads: int = 4,
                 n_iters: Sequence[int] = (5, 5, 5, 5, 5, 5, 5, 5),
                 num_tokens: Sequence[int] = (16, 32, 64, 128, 16, 32, 64, 128),
                 group_sizes: Sequence[int] = (256, 128, 64, 32, 256, 128, 64, 32),
                 patch_sizes: Sequence[int] = (16, 20, 24, 28, 16, 20, 24, 28),
                 init_cfg=None) -> None:
        super().__init__(upscale, init_cfg)
        depth = len(patch_sizes)
        for name, seq in dict(n_iters=n_iters, num_tokens=num_tokens,
                              group_sizes=group_sizes).items():
            if len(seq) != depth:
                raise ValueError(f'CATANet: {name} has {len(seq)} entries but patch_sizes has '
                                 f'{depth}; give one per block')
        if dim % num_heads or qk_dim % num_heads:
            raise ValueError(f'CATANet: dim ({dim}) and qk_dim ({qk_dim}) must be multiples of '
                             f'num_heads ({num_heads})')
        self.conv_first = nn.Conv2d(in_channels, dim, 3, 1, 1)
        self.blocks = nn.ModuleList(
            CATABlock(dim, qk_dim, mlp_dim, num_heads, n_iters[i], num_tokens[i], group_sizes[i],
                      patch_sizes[i]) for i in range(depth))
        if upscale == 4:
            self.upsample = nn.Sequential(
                nn.Conv2d(dim, dim * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True),
                nn.Conv2d(dim, dim * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True))
        elif upscale in (2, 3):
            self.upsample = nn.Sequential(nn.Conv2d(dim, dim * upscale ** 2, 3, 1, 1),
                                          nn.PixelShuffle(upscale), nn.LeakyReLU(0.1, True))
        else:
            self.upsample = nn.Identity()
        self.conv_last = nn.Conv2d(dim, in_channels, 3, 1, 1)
        self.apply(self._init_layer)

    @staticmethod
    def _init_layer(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = x if self.upscale == 1 else F.interpolate(
            x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        x = self.conv_first(x)
        feat = x
        for block in self.blocks:
            feat = block(feat)
        return self.conv_last(self.upsample(feat + x)) + base
