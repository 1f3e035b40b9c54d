"""Tiled inference equals whole-image inference."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from plugins.tasks.sr.tiling import grid_positions, tiled_inference


def local_net(scale=2):
    """A conv net with receptive-field radius 2 (two 3x3 convs) and pixel shuffle."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))


def test_tiles_cover_with_the_requested_overlap():
    starts = grid_positions(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))


def test_one_tile_is_the_whole_image_when_it_fits():
    model = MODELS.build(dict(type='CATANet', upscale=2)).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(tiled_inference(model, x, 2, tile=32), model(x))


def test_crop_blend_equals_whole_image_for_a_local_network():
    net = local_net()
    x = torch.rand(1, 3, 45, 38)
    with torch.no_grad():
        tiled = tiled_inference(net, x, 2, tile=16, overlap=6, blend='crop')
        torch.testing.assert_close(tiled, net(x))


def test_average_blend_equals_whole_image_for_a_pointwise_network():
    net = nn.Sequential(nn.Conv2d(3, 12, 1), nn.PixelShuffle(2))
    x = torch.rand(2, 3, 33, 27)
    with torch.no_grad():
        torch.testing.assert_close(tiled_inference(net, x, 2, tile=10, overlap=4), net(x))


def test_srmodel_uses_tiles_from_test_cfg():
    model = MODELS.build(dict(type='SRModel', generator=dict(type='CATANet', upscale=2),
                              test_cfg=dict(tile=12, tile_overlap=4))).eval()
    x = torch.rand(1, 3, 30, 20)
    with torch.no_grad():
        assert model.infer(x).shape == (1, 3, 60, 40)


def test_bad_blend_is_rejected():
    with pytest.raises(ValueError, match='blend'):
        tiled_inference(local_net(), torch.rand(1, 3, 20, 20), 2, 8, 2, blend='max')
