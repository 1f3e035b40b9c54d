"""SS2D, the 2-D selective scan of VMamba ("VMamba: Visual State Space Model", Liu et al., arXiv
2401.10166: its 2-D selective scan with the cross-scan module) as used by Mamba-YOLO ("Mamba YOLO: A
Simple Baseline for Object Detection with State Space Model", arXiv 2406.05835: its ODSSBlock).

``x -> in_proj -> (x, z)``; ``x -> 3x3 depth-wise conv -> act``; the map is read in four orders
(rows, columns, both reversed), each order runs its own selective scan (Mamba's S6: input-dependent
``delta``, ``B``, ``C`` from a per-direction projection, ``A = -exp(A_log)``, skip ``D``,
``delta = softplus(dt_proj(...) + bias)``), the four outputs are summed back on the grid, layer
normalised, gated by ``act(z)`` and projected out. ``d_state = 16``, ``ssm_ratio = 2``,
``dt_rank = ceil(dim / 16)`` as both papers.

The scan is :func:`plugins.ops.selective_scan.selective_scan` (chunked, pure PyTorch, CPU and
GPU), the same numbers as the sequential recurrence.
Cost: ``O(4 N d_inner d_state)`` time, linear in tokens; no size constraint.
Parameter names match Mamba-YOLO's / VMamba's ``SS2D`` (``forward_type='v2'``).
"""
import math

import torch
import torch.nn as nn

from ..ops.selective_scan import cross_merge, cross_scan, selective_scan
from ..registry import MODELS

_ACTS = {'gelu': nn.GELU, 'silu': nn.SiLU}


@MODELS.register_module()
class SS2DMixer(nn.Module):
    """SS2D on a ``(B, C, H, W)`` map.

    Args:
        dim: channels C.
        num_heads: unused (SS2D has no heads); accepted for the mixer interface.
        d_state: N of the state (16).
        ssm_ratio: ``d_inner = ssm_ratio * dim`` (2).
        dt_rank: rank of the delta projection, 'auto' = ``ceil(dim / 16)``.
        d_conv: depth-wise conv kernel (3; < 2 disables it).
        act: 'gelu' (Mamba-YOLO) or 'silu' (VMamba).
        bias: bias of the in / out projections (False in both).
        init: 'mamba' (S4D-real A, delta in [dt_min, dt_max], D = 1: VMamba's 'v0') or 'simple'
            (Mamba-YOLO's: A_log = 0, random dt projections).
        chunk_size: tokens per chunk of the scan.
    """

    def __init__(self, dim: int, num_heads: int = 1, d_state: int = 16, ssm_ratio: float = 2.0,
                 dt_rank='auto', d_conv: int = 3, act: str = 'gelu', bias: bool = False,
                 init: str = 'mamba', dt_min: float = 0.001, dt_max: float = 0.1,
                 chunk_size: int = 32):
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f"SS2DMixer: act must be one of {sorted(_ACTS)}, got {act!r}")
        d_inner = int(ssm_ratio * dim)
        self.dim = dim
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16) if dt_rank == 'auto' else int(dt_rank)
        self.chunk_size = chunk_size
        self.K = 4
        self.in_proj = nn.Conv2d(dim, d_inner * 2, 1, bias=bias)
        self.act = _ACTS[act]()
        self.d_conv = d_conv
        if d_conv > 1:
            self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                    groups=d_inner)
        self.x_proj_weight = nn.Parameter(
            torch.empty(self.K, self.dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(self.K, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(self.K, d_inner))
        self.A_logs = nn.Parameter(torch.empty(self.K * d_inner, d_state))
        self.Ds = nn.Parameter(torch.ones(self.K * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Conv2d(d_inner, dim, 1, bias=bias)
        self.reset_ssm_parameters(init, dt_min, dt_max)

    @torch.no_grad()
    def reset_ssm_parameters(self, init: str = 'mamba', dt_min: float = 0.001,
                             dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> None:
        """Mamba's init (S4D-Real A, inverse-softplus dt bias) or Mamba-YOLO's simple one."""
        bound = self.d_inner ** -0.5
        nn.init.uniform_(self.x_proj_weight, -bound, bound)      # nn.Linear's default
        self.Ds.fill_(1.0)
        if init == 'simple':
            self.A_logs.zero_()
            self.dt_projs_weight.normal_()
            self.dt_projs_bias.normal_()
            return
        if init != 'mamba':
            raise ValueError(f"SS2DMixer: init must be 'mamba' or 'simple', got {init!r}")
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_projs_weight, -std, std)
        dt = torch.exp(torch.rand(self.K, self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(torch.log(a).repeat(self.K * self.d_inner, 1))

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """The four-direction selective scan: (B, d_inner, H, W) -> (B, d_inner, H*W)."""
        B, D, H, W = x.shape
        L = H * W
        xs = cross_scan(x)                                                 # B K D L
        x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
        dts, Bs, Cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        ys = selective_scan(xs.reshape(B, -1, L), dts.reshape(B, -1, L), -torch.exp(self.A_logs),
                            Bs, Cs, self.Ds, delta_bias=self.dt_projs_bias.reshape(-1),
                            delta_softplus=True, chunk_size=self.chunk_size)
        return cross_merge(ys.view(B, self.K, D, L), H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        x, z = self.in_proj(x).chunk(2, dim=1)
        if self.d_conv > 1:
            x = self.conv2d(x)
        y = self.scan(self.act(x))                                         # B D L
        y = self.out_norm(y.transpose(1, 2)).transpose(1, 2).reshape(B, -1, H, W)
        return self.out_proj(y * self.act(z))

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, '
                f'dt_rank={self.dt_rank}')
