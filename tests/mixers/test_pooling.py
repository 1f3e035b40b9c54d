"""PoolingMixer (PoolFormer) against an explicit mean over each token's valid neighbours."""
import pytest
import torch
import torch.nn.functional as F

from plugins.mixers.pooling import PoolingMixer


def dense_pooling(k, x):
    """Each token: the mean of the real tokens of its k x k window, minus itself (Eq. 4)."""
    b, c, h, w = x.shape
    patches = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h, w)
    counts = F.unfold(torch.ones(1, 1, h, w, dtype=x.dtype), k, padding=k // 2).sum(1)
    return patches.sum(2) / counts.view(1, 1, h, w) - x


@pytest.mark.parametrize('size', [(7, 11), (1, 1), (2, 5)])
@pytest.mark.parametrize('pool_size', [3, 5])
def test_pooling_is_the_mean_of_the_real_neighbours_minus_the_token(size, pool_size):
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    torch.testing.assert_close(PoolingMixer(4, pool_size=pool_size)(x),
                               dense_pooling(pool_size, x))


def test_even_pool_size_is_refused():
    with pytest.raises(ValueError, match='pool_size must be odd'):
        PoolingMixer(8, pool_size=4)
