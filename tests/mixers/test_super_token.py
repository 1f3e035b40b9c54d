"""SuperTokenAttention (STViT) against a dense association matrix and dense MHSA."""
import pytest
import torch
import torch.nn.functional as F

from .mixer_checks import compare_bf16, compare_with_reference, randomize_
from plugins.mixers.super_token import SuperTokenAttention


def dense_mhsa(attn, s):
    """Explicit softmax attention among the columns of s: (B, C, M) -> (B, C, M)."""
    B, C, M = s.shape
    h, d = attn.num_heads, attn.head_dim
    qkv = F.conv1d(s, attn.qkv.weight[..., 0], attn.qkv.bias).view(B, h, 3, d, M)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]                    # B h d M
    a = (q.transpose(-1, -2) @ k * attn.scale).softmax(-1)               # B h M M
    out = (a @ v.transpose(-1, -2)).transpose(-1, -2).reshape(B, C, M)
    return F.conv1d(out, attn.proj.weight[..., 0], attn.proj.bias)


def dense_sta(m, x):
    """The association as an N x M matrix (zero outside each pixel's 3x3 cells), sampling as
    A^T X over its column sums, MHSA, and upsampling as A S."""
    h, w = m.stoken_size
    B, C, H0, W0 = x.shape
    if (h, w) == (1, 1):
        return dense_mhsa(m.stoken_refine, x.flatten(2)).view(B, C, H0, W0)
    x = F.pad(x, (0, (-W0) % w, 0, (-H0) % h))
    H, W = x.shape[-2:]
    hh, ww = H // h, W // w
    X = x.flatten(2).transpose(1, 2)                                      # B N C (row-major)
    py, px = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    cy, cx = (py // h).flatten(), (px // w).flatten()                     # cell of each pixel
    sy, sx = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing='ij')
    sy, sx = sy.flatten(), sx.flatten()
    near = ((sy[None] - cy[:, None]).abs() <= 1) & ((sx[None] - cx[:, None]).abs() <= 1)  # N M
    n_outside = (9 - near.sum(1)).to(x.dtype)                             # zero-feature candidates
    with torch.no_grad():
        S = F.adaptive_avg_pool2d(x, (hh, ww)).flatten(2).transpose(1, 2)  # B M C
        for it in range(m.n_iter):
            logits = (X @ S.transpose(1, 2) * m.scale).masked_fill(~near, float('-inf'))
            mx = logits.amax(-1, keepdim=True).clamp_min(0)
            e = (logits - mx).exp()
            A = e / (e.sum(-1, keepdim=True) + n_outside[:, None] * (-mx).exp())  # B N M
            if it < m.n_iter - 1:
                S = (A.transpose(1, 2) @ X) / (A.sum(1)[..., None] + 1e-12)
    S = (A.transpose(1, 2) @ X) / (A.sum(1)[..., None] + 1e-12)
    S = dense_mhsa(m.stoken_refine, S.transpose(1, 2)).transpose(1, 2)
    out = (A @ S).transpose(1, 2).reshape(B, C, H, W)
    return out[:, :, :H0, :W0]


@pytest.mark.parametrize('size,stoken', [((13, 21), 4), ((16, 16), 8), ((5, 3), 8), ((1, 1), 2),
                                         ((9, 10), (2, 3)), ((6, 7), 1)])
@pytest.mark.parametrize('n_iter', [1, 2])
def test_matches_dense_reference(size, stoken, n_iter):
    m = randomize_(SuperTokenAttention(16, num_heads=2, stoken_size=stoken, n_iter=n_iter))
    compare_with_reference(m, dense_sta, torch.randn(2, 16, *size))


def test_bf16_close_to_fp32():
    compare_bf16(SuperTokenAttention(32, num_heads=2, stoken_size=4), torch.randn(2, 32, 13, 21))


def test_association_of_each_pixel_sums_to_one_over_its_nine_candidates():
    m = SuperTokenAttention(8, stoken_size=4)
    pixels = torch.randn(1, 6, 16, 8)
    stokens = torch.randn(1, 8, 2, 3)
    assoc = m.association(pixels, stokens)
    torch.testing.assert_close(assoc.sum(-1), torch.ones(1, 6, 16))
