"""reflect_pad_2d: ReflectionPad2d where that is defined, repeated reflection beyond."""
import pytest
import torch
import torch.nn as nn

from plugins.ops.reflect_pad import reflect_pad_2d


@pytest.mark.parametrize('pads', [(0, 3, 0, 2), (2, 1, 3, 0), (0, 0, 0, 0)])
def test_equals_reflection_pad_when_pad_is_smaller_than_size(pads):
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(reflect_pad_2d(x, *pads), nn.ReflectionPad2d(pads)(x))


def test_large_pads_reflect_repeatedly():
    x = torch.arange(3.).view(1, 1, 1, 3)
    out = reflect_pad_2d(x, 0, 9, 0, 0)
    assert out.flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]
    # same as applying ReflectionPad2d again and again, each time by less than the size
    y = x
    while y.shape[-1] < 12:
        y = nn.ReflectionPad2d((0, min(12 - y.shape[-1], y.shape[-1] - 1), 0, 0))(y)
    torch.testing.assert_close(out, y)


def test_size_one_dimension_repeats_its_element():
    x = torch.randn(1, 2, 1, 1)
    assert torch.equal(reflect_pad_2d(x, 0, 4, 0, 5), x.expand(1, 2, 6, 5))
