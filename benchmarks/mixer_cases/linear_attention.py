"""Benchmark cases of the linear attention mixers, with a faithful re-run of each official
formulation (InLine-PVT's ``InLineAttention.forward``, L2ViT's ``LinearAttention`` + ``LCM``),
written from the facts of their code and run with our weights."""
import torch
import torch.nn.functional as F

from plugins.mixers.enhanced_linear_attention import EnhancedLinearAttention
from plugins.mixers.inline_attention import InLineAttention

from . import MixerCase


def inline_official_formulation(m: InLineAttention):
    """InLine-PVT: kv = (K^T sqrt(s/n)) (V sqrt(s/n)); Q kv + (1 - Q mean(K)^T s) mean(V); the
    residual as one grouped conv over the batch (groups = b * c)."""
    def run(x):
        b, c, H, W = x.shape
        n, nh, hd = H * W, m.num_heads, m.head_dim
        t = x.flatten(2).transpose(1, 2)
        q = m.q(t)
        kv = m.kv(t).reshape(b, -1, 2, c).permute(2, 0, 1, 3)
        k, v = kv[0], kv[1]
        q = q.reshape(b, n, nh, hd).permute(0, 2, 1, 3)
        k = k.reshape(b, n, nh, hd).permute(0, 2, 1, 3)
        v = v.reshape(b, n, nh, hd).permute(0, 2, 1, 3)
        res_w = m.residual(t.mean(dim=1).unsqueeze(-1)).reshape(b * c, 1, 3, 3)
        s = (m.scale / n) ** 0.5
        kv = (k.transpose(-2, -1) * s) @ (v * s)
        out = q @ kv + (1 - q @ k.mean(dim=2, keepdim=True).transpose(-2, -1) * m.scale) * \
            v.mean(dim=2, keepdim=True)
        out = out.transpose(1, 2).reshape(b, n, c)
        vm = v.transpose(1, 2).reshape(b, H, W, c).permute(0, 3, 1, 2).reshape(1, b * c, H, W)
        res = F.conv2d(vm, res_w, None, padding=(1, 1), groups=b * c)
        out = m.proj(out + res.reshape(b, c, n).permute(0, 2, 1))
        return out.transpose(1, 2).reshape(b, c, H, W)
    return run


def l2vit_official_formulation(m: EnhancedLinearAttention):
    """L2ViT: ReLU kernel, denominator clamped at 100, K^T V times the temperature first, then
    the LCM on the (B, N, C) tokens reshaped to a map, as ``LGABlock`` calls it."""
    def run(x):
        b, c, H, W = x.shape
        n = H * W
        t = x.flatten(2).transpose(1, 2)
        qkv = m.qkv(t).reshape(b, n, 3, m.num_heads, c // m.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = F.relu(qkv[0]), F.relu(qkv[1]), qkv[2]
        denom = torch.clamp(q @ k.transpose(-2, -1).sum(dim=-1, keepdim=True), 1e2)
        attn = (k.transpose(-2, -1) @ v) * m.temperature
        a = m.proj(((q @ attn) / denom).transpose(1, 2).reshape(b, n, c))
        f = m.lcm_norm(a).transpose(-1, -2).contiguous().view(b, c, H, W)
        f = m.lcm.conv2(m.lcm.bn(m.lcm.act(m.lcm.conv1(f))))
        out = a + f.flatten(2).transpose(-1, -2)
        return out.transpose(1, 2).reshape(b, c, H, W)
    return run


CASES = [
    MixerCase('InLineAttention', 'InLine (2412.06590)',
              lambda dim, heads: InLineAttention(dim, heads), 'linear',
              'official InLine-PVT formulation', inline_official_formulation),
    MixerCase('EnhancedLinearAttention (LGA + LCM)', 'L2ViT',
              lambda dim, heads: EnhancedLinearAttention(dim, heads), 'linear',
              'official L2ViT LinearAttention + LCM formulation', l2vit_official_formulation),
]
