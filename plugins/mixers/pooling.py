"""PoolFormer's pooling token mixer: "MetaFormer Is Actually What You Need for Vision" (Yu, Luo,
Zhou, Si, Zhou, Wang, Feng, Yan; arXiv 2111.11418).

``T' = AvgPool(T) - T`` (Sec. 3.1, Eq. 4): a parameter-free mixer, each token replaced by the mean
of its ``k x k`` neighbourhood minus itself (the block adds the input back). Border windows average
only the real tokens (``count_include_pad=False``, as the official code). ``O(N k^2 C)`` time,
no parameters, no size constraint.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS


@MODELS.register_module()
class PoolingMixer(nn.Module):
    """``AvgPool_{k x k, stride 1}(x) - x`` on a ``(B, C, H, W)`` map (PoolFormer's ``Pooling``).

    Args:
        dim, num_heads: unused (pooling has neither weights nor heads); accepted for the mixer
            interface ``Mixer(dim, num_heads, **params)``.
        pool_size: odd window side k (3 in PoolFormer).
    """

    def __init__(self, dim: int, num_heads: int = 1, pool_size: int = 3):
        super().__init__()
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f'PoolingMixer: pool_size must be odd and positive (the window is '
                             f'centred on each token), got {pool_size}')
        self.pool_size = pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.pool_size
        return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False) - x

    def extra_repr(self) -> str:
        return f'pool_size={self.pool_size}'
