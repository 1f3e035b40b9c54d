"""Dense specification of 2-D neighborhood attention, written from NATTEN's mask definition
(window centre = stride-group leader clamped inward, same dilation group), independent of the
tiled implementation."""
import torch

from plugins.ops.global_attention import dense_attention


def _axis_allowed(length, kernel, dilation, stride):
    """(L, L) bool: key position allowed for query position along one axis, and the relative offset
    in dilation-group coordinates."""
    pos = torch.arange(length)
    grp = pos % dilation
    gi = pos // dilation
    glen = torch.tensor([len(range(int(g), length, dilation)) for g in grp])  # per query
    ke = torch.clamp(glen, max=kernel)
    left = kernel // 2
    leader = torch.minimum((gi // stride) * stride + stride // 2, glen - 1)
    start = torch.clamp(leader - left, min=0)
    start = torch.minimum(start, torch.clamp(glen - ke, min=0))
    kg = gi[None, :]
    allowed = (grp[:, None] == grp[None, :]) & (kg >= start[:, None]) & (kg < start[:, None] + ke[:, None])
    rel = kg - gi[:, None] + kernel - 1
    return allowed, rel


def na_reference(q, k, v, kernel, dilation=1, stride=1, rpb=None, scale=None):
    """q, k, v: (B, heads, H, W, d). Returns (B, heads, H, W, d_v)."""
    b, nh, h, w, d = q.shape
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    stride = (stride, stride) if isinstance(stride, int) else stride
    ah, relh = _axis_allowed(h, kernel[0], dilation[0], stride[0])
    aw, relw = _axis_allowed(w, kernel[1], dilation[1], stride[1])
    mask = (ah[:, None, :, None] & aw[None, :, None, :]).reshape(h * w, h * w)
    bias = None
    if rpb is not None:
        rh = relh.clamp(0, 2 * kernel[0] - 2)[:, None, :, None]
        rw = relw.clamp(0, 2 * kernel[1] - 2)[None, :, None, :]
        bias = rpb[:, rh, rw].reshape(nh, h * w, h * w)
    out = dense_attention(q.reshape(b, nh, h * w, d), k.reshape(b, nh, h * w, d),
                          v.reshape(b, nh, h * w, -1), mask=mask, bias=bias, scale=scale)
    return out.reshape(b, nh, h, w, -1)
