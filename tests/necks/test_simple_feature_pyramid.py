"""The simple feature pyramid (ViTDet): levels, channels, and use after any single-scale map."""
import pytest
import torch

from plugins.necks.simple_feature_pyramid import SimpleFeaturePyramid


@pytest.mark.parametrize('size', [(13, 19), (50, 76)])
def test_levels_are_strides_4_to_64_from_a_stride_16_map(size):
    neck = SimpleFeaturePyramid([192, 192], out_channels=32, num_outs=5)
    h, w = size
    outs = neck([torch.randn(2, 192, h, w), torch.randn(2, 192, h, w)])
    assert [o.shape[1] for o in outs] == [32] * 5
    expected = [(4 * h, 4 * w), (2 * h, 2 * w), (h, w), (-(-h // 2), -(-w // 2))]
    expected.append((-(-expected[-1][0] // 2), -(-expected[-1][1] // 2)))
    assert [tuple(o.shape[2:]) for o in outs] == expected


def test_only_the_last_map_is_used():
    neck = SimpleFeaturePyramid(64, out_channels=16)
    last = torch.randn(1, 64, 8, 8)
    a = neck([torch.randn(1, 64, 8, 8), last])
    b = neck([torch.zeros(1, 64, 8, 8), last])
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_gradients_reach_every_parameter():
    neck = SimpleFeaturePyramid(64, out_channels=16, num_outs=5)
    sum(o.mean() for o in neck(torch.randn(2, 64, 7, 9))).backward()
    assert all(p.grad is not None for p in neck.parameters())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='divisible by 4'):
        SimpleFeaturePyramid(66)
    with pytest.raises(ValueError, match='scale factor 3.0'):
        SimpleFeaturePyramid(64, scale_factors=(3, 1))
    with pytest.raises(ValueError, match='num_outs'):
        SimpleFeaturePyramid(64, num_outs=2)
