"""DualToken-ViT: "DualToken-ViT: Position-aware Efficient Vision Transformer with Dual Token
Fusion" (Chu, Chen, Chen, Wang, Wu, Huang, Qian; SDM 2024, arXiv 2309.12424). No code was
published: this is built from the paper, and every choice it leaves open is listed below (and in
``docs/dualtoken.md``).

LightViT's three-stage layout (Sec. 3: its conv stem to stride 8 and its residual patch merging,
stages at strides 8 / 16 / 32) with *Dual Token Blocks* (Sec. 3.1, Fig. 2):

- local tokens ``X_local = ConvEncoder(X)``, a ConvNeXt block (7x7 depth-wise conv, LayerNorm,
  4x point-wise MLP, residual);
- the *position-aware token module* on ``X_local``: (1) step-wise down-sampling, one conv + x2
  down-sampling per step, repeated until the stride-32 grid (7x7 at 224: 2 steps in stage 1, 1 in
  stage 2, none in stage 3); (2) global aggregation, multi-head self-attention over that grid:
  ``X_ga``; (3) enrichment with the position-aware global tokens ``G`` (as many tokens as
  ``X_ga``, Sec. 3.2, Fig. 3 (e)) by a weighted sum, then an MLP: ``G_new``; (4) global broadcast,
  attention of every image token (query) to ``G_new`` (keys / values): ``X_global``;
- fusion ``X_local + X_global``, then the FFN with LightViT's bi-dimensional attention
  (``BiAttn``) after it. ``G_new`` is handed to the next block and, through the patch merging
  (LayerNorm + linear, as LightViT's global tokens), to the next stage: one set of position-aware
  tokens runs through all stages.

Choices the paper leaves open (taken here):

- down-sampling step: 3x3 depth-wise conv with stride 2 + BatchNorm (the paper: "extracted by
  convolution and down-sampled"); the aggregation is pre-norm MHSA with a residual;
- the weighted sum: ``G_new = a * X_ga + (1 - a) * G`` with one learned scalar ``a`` per block
  (initialised at 0.5), then ``G_new + MLP(LN(G_new))`` with hidden width = ``token_mlp_ratio * C``
  (1): the channel MLP, not the token-mixing "mix" variant (that one needs exactly 7x7 tokens);
- the broadcast attention: queries from ``LN(X_local)``, keys / values from ``LN(G_new)``, the
  same heads as the stage, output projection;
- ``G`` is a learned ``7 x 7`` grid (the paper's size) interpolated bilinearly to the stride-32
  grid of other inputs (the paper interpolates when the counts differ, Sec. 4 ablation), so any
  H, W works; widths / depths / heads: S = LightViT-T's (64 / 128 / 256, 2 / 6 / 6, 2 / 4 / 8),
  T = 48 / 96 / 192 with the same depths and heads; FFN ratios 4 / 2 / 2 (LightViT's 8 / 4 / 4
  would put S at 1.15 GFLOPs: the ConvNeXt encoder costs as much as a 4x FFN). With these, the
  FLOPs at 224 (backbone, mmengine's analyser) are 0.54 G (T) and 0.95 G (S) against the paper's
  0.5 G and 1.0 G; parameters 6.73 M / 11.89 M (backbone); the paper's parameter counts were
  not at hand (``reference.yaml``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.nn.init import trunc_normal_

from ..ops.global_attention import global_attention
from ..registry import MODELS
from .base import AttentionBackbone
from .layers import ChannelLayerNorm

TOKEN_GRID = 7  # the position-aware global tokens: 7 x 7 (Sec. 3.3)


class ConvStem(nn.Module):
    """LightViT's stem: 3x3/2 conv, two 3x3 depth-wise convs, a 3x3/2 depth-wise conv (each +
    BN + GELU), then a 3x3/2 conv to ``dim`` and a LayerNorm: stride 8."""

    def __init__(self, in_channels, dim, norm_cfg):
        super().__init__()
        half = dim // 2

        def conv_bn(cin, cout, stride, groups):
            return [nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False),
                    build_norm_layer(norm_cfg, cout)[1], nn.GELU()]

        self.stem = nn.Sequential(*conv_bn(in_channels, half, 2, 1), *conv_bn(half, half, 1, half),
                                  *conv_bn(half, half, 1, half), *conv_bn(half, half, 2, half))
        self.proj = nn.Conv2d(half, dim, 3, 2, 1)
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(self.stem(x)))


class ResidualMergePatch(nn.Module):
    """LightViT's patch merging: ``Linear(LN(2x2 neighbours concatenated)) + Linear(MaxPool2x2)``
    (odd maps padded by one row / column), and ``Linear(LN(G))`` for the global tokens."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)
        self.res_proj = nn.Linear(dim, out_dim, bias=False)
        self.token_norm = nn.LayerNorm(dim)
        self.token_proj = nn.Linear(dim, out_dim, bias=False)

    def forward(self, x, tokens):  # x: B C H W, tokens: B h w C
        h, w = x.shape[2:]
        x = F.pad(x, (0, w % 2, 0, h % 2)).permute(0, 2, 3, 1)  # B H W C
        res = self.res_proj(F.max_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        x = self.reduction(self.norm(x)) + res
        return x.permute(0, 3, 1, 2), self.token_proj(self.token_norm(tokens))


class ConvEncoder(nn.Module):
    """The local branch: a ConvNeXt block ``x + pw2(GELU(pw1(LN(DWConv7x7(x)))))`` (Sec. 3.1)."""

    def __init__(self, dim, expansion=4):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expansion * dim, dim)

    def forward(self, x):  # B C H W
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        return x + self.pwconv2(self.act(self.pwconv1(y))).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-head attention of ``queries (B, N, C)`` to ``context (B, M, C)``."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'DualToken-ViT: dim ({dim}) must be divisible by num_heads '
                             f'({num_heads})')
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries, context):
        b, n, c = queries.shape
        q = self.q(queries).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).view(b, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return self.proj(global_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class PositionAwareTokenModule(nn.Module):
    """Step-wise down-sampling, global aggregation, enrichment of the position-aware global
    tokens, global broadcast (Sec. 3.1 (1)-(4)). ``forward(x_local, tokens)`` with ``x_local``
    ``(B, C, H, W)`` and ``tokens`` ``(B, h, w, C)`` on the stride-32 grid returns ``X_global``
    ``(B, C, H, W)`` and the new tokens."""

    def __init__(self, dim, num_heads, down_steps, norm_cfg, token_mlp_ratio=1):
        super().__init__()
        self.down = nn.Sequential(*[nn.Sequential(
            nn.Conv2d(dim, dim, 3, 2, 1, groups=dim, bias=False),
            build_norm_layer(norm_cfg, dim)[1])
            for _ in range(down_steps)])
        self.norm_ga = nn.LayerNorm(dim)
        self.aggregate = Attention(dim, num_heads)
        self.token_weight = nn.Parameter(torch.tensor(0.5))
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * token_mlp_ratio)
        self.token_mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.broadcast = Attention(dim, num_heads)

    def forward(self, x_local, tokens):
        b, c, h, w = x_local.shape
        x_ds = self.down(x_local).permute(0, 2, 3, 1)  # B h w C
        if x_ds.shape[1:3] != tokens.shape[1:3]:
            raise ValueError(f'DualToken-ViT: the down-sampled map {tuple(x_ds.shape[1:3])} and '
                             f'the global tokens {tuple(tokens.shape[1:3])} differ')
        x_ds = x_ds.reshape(b, -1, c)
        x_ga = self.norm_ga(x_ds)
        x_ga = x_ds + self.aggregate(x_ga, x_ga)  # (2) global aggregation
        a = self.token_weight
        new = a * x_ga + (1 - a) * tokens.reshape(b, -1, c)  # (3) weighted sum with G
        new = new + self.token_mlp(self.norm_mlp(new))
        queries = self.norm_q(x_local.permute(0, 2, 3, 1).reshape(b, h * w, c))
        x_global = self.broadcast(queries, self.norm_kv(new))  # (4) global broadcast
        return x_global.transpose(1, 2).reshape(b, c, h, w), new.view(tokens.shape)


class BiAttn(nn.Module):
    """LightViT's bi-dimensional attention: the input gated by a channel attention (from the
    mean token) times a spatial attention (from each token and the mean token)."""

    def __init__(self, dim, act_ratio=0.25):
        super().__init__()
        reduced = int(dim * act_ratio)
        self.norm = nn.LayerNorm(dim)
        self.global_reduce = nn.Linear(dim, reduced)
        self.local_reduce = nn.Linear(dim, reduced)
        self.act = nn.GELU()
        self.channel_select = nn.Linear(reduced, dim)
        self.spatial_select = nn.Linear(2 * reduced, 1)

    def forward(self, x):  # B N C
        y = self.norm(x)
        pooled = self.act(self.global_reduce(y.mean(1, keepdim=True)))  # B 1 C'
        local = self.act(self.local_reduce(y))
        channel = self.channel_select(pooled).sigmoid()
        spatial = self.spatial_select(torch.cat([local, pooled.expand_as(local)], -1)).sigmoid()
        return x * channel * spatial


class BiAttnMlp(nn.Module):
    """``BiAttn(fc2(GELU(fc1(x))))``: the FFN with bi-dimensional attention after it."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.attn = BiAttn(dim)

    def forward(self, x):
        return self.attn(self.fc2(self.act(self.fc1(x))))


class DualTokenBlock(nn.Module):
    """``X_local = ConvEncoder(x)``; ``x = X_local + X_global``; ``x + FFN(LN(x))``. NCHW in and
    out; ``forward(x, tokens) -> (x, tokens)``."""

    def __init__(self, dim, num_heads, mlp_ratio, down_steps, drop_path, norm_cfg,
                 token_mlp_ratio=1):
        super().__init__()
        self.local = ConvEncoder(dim)
        self.ptm = PositionAwareTokenModule(dim, num_heads, down_steps, norm_cfg, token_mlp_ratio)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = BiAttnMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, tokens):
        x_local = self.local(x)
        x_global, tokens = self.ptm(x_local, tokens)
        x = x_local + self.drop_path(x_global)  # fusion (Sec. 3.1)
        x = x.permute(0, 2, 3, 1)
        x = x + self.drop_path(self.mlp(self.norm(x)))
        return x.permute(0, 3, 1, 2), tokens


class DualTokenStage(nn.Module):
    """Stem or patch merging, blocks, output LayerNorm (on a returned map only); stage 0 holds
    the global tokens."""

    def __init__(self, downsample, blocks, dim, tokens=None, out_norm=True):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(dim, eps=1e-6) if out_norm else nn.Identity()
        if tokens is not None:
            self.global_tokens = nn.Parameter(tokens)


@MODELS.register_module()
class DualTokenViT(AttentionBackbone):
    """DualToken-ViT backbone, presets T / S (0.5 / 1.0 GFLOPs at 224 in the paper).

    Three stages at strides 8 / 16 / 32 (LightViT's layout): detection configs use a three-level
    FPN (``configs/dualtoken``).

    Example::

        backbone=dict(type='DualTokenViT', arch='s', drop_path_rate=0.1)

    Args:
        arch: 't' | 's' (aliases 'tiny', 'small') or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios`` (per stage) and ``token_mlp_ratio``.
        norm_cfg: the BatchNorm of the stem and the down-sampling steps.
        Others: see :class:`AttentionBackbone`.
    """
    arch_zoo = {
        't': dict(embed_dims=[48, 96, 192], depths=[2, 6, 6], num_heads=[2, 4, 8],
                  mlp_ratios=[4, 2, 2], token_mlp_ratio=1),
        's': dict(embed_dims=[64, 128, 256], depths=[2, 6, 6], num_heads=[2, 4, 8],
                  mlp_ratios=[4, 2, 2], token_mlp_ratio=1),
    }
    arch_zoo.update(tiny=arch_zoo['t'], small=arch_zoo['s'])

    def __init__(self, arch='s', in_channels=3, out_indices=(0, 1, 2), frozen_stages=-1,
                 norm_eval=False, drop_path_rate=0., with_cp=False,
                 norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, with_cp, init_cfg)
        s = self.arch_settings
        dims, depths = s['embed_dims'], s['depths']
        lengths = {k: len(s[k]) for k in ('embed_dims', 'depths', 'num_heads', 'mlp_ratios')}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'DualTokenViT needs one value per stage in each of '
                             f'{sorted(lengths)}; got lengths {lengths}')
        rates = self.drop_path_rates(depths)
        num = len(dims)
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            down = (ConvStem(in_channels, dim, norm_cfg) if i == 0
                    else ResidualMergePatch(dims[i - 1], dim))
            blocks = [DualTokenBlock(dim, s['num_heads'][i], s['mlp_ratios'][i], num - 1 - i,
                                     rates[i][j], norm_cfg, s['token_mlp_ratio'])
                      for j in range(depth)]
            tokens = torch.zeros(1, TOKEN_GRID, TOKEN_GRID, dim) if i == 0 else None
            stages.append(DualTokenStage(down, blocks, dim, tokens, self.is_returned(i, num)))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(dims)
        self.stage_strides = [8 * 2**i for i in range(num)]
        self._check_indices()

    def global_tokens(self, grid):
        """The position-aware global tokens on the ``(h, w)`` grid of the last stage."""
        tokens = self.stages[0].global_tokens
        if tuple(grid) == (TOKEN_GRID, TOKEN_GRID):
            return tokens
        tokens = F.interpolate(tokens.permute(0, 3, 1, 2), size=tuple(grid), mode='bilinear',
                               align_corners=False)
        return tokens.permute(0, 2, 3, 1)

    def forward_stages(self, x):
        h, w = x.shape[2:]
        last = self.stage_strides[-1]
        tokens = self.global_tokens((-(-h // last), -(-w // last)))
        tokens = tokens.expand(x.shape[0], -1, -1, -1)
        outs = []
        for i, stage in enumerate(self.stages):
            if i == 0:
                x = stage.downsample(x)
            else:
                x, tokens = stage.downsample(x, tokens)
            for block in stage.blocks:
                x, tokens = self.run_block(block, x, tokens)
            outs.append(stage.norm(x))
        return outs

    def init_weights(self):
        if self.init_cfg is None:
            trunc_normal_(self.stages[0].global_tokens, std=.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()
