"""MATLAB-style bicubic resizing."""
import numpy as np

from plugins.tasks.sr.imresize import bicubic_degrade, imresize


def test_output_size_is_ceil_of_scaled_size():
    img = np.zeros((31, 45, 3), np.uint8)
    assert imresize(img, 0.5).shape == (16, 23, 3)
    assert imresize(img, 1 / 3).shape == (11, 15, 3)
    assert imresize(img, 2).shape == (62, 90, 3)


def test_constant_image_stays_constant():
    img = np.full((20, 24, 3), 77, np.uint8)
    assert (imresize(img, 0.5) == 77).all() and (imresize(img, 3) == 77).all()


def test_linear_ramp_is_reproduced_in_the_interior():
    # the cubic kernel reproduces linear functions; pixel centres map as u = x / s + (1 - 1 / s) / 2
    ramp = np.tile(np.arange(1, 41, dtype=np.float64), (8, 1))
    out = imresize(ramp, 0.5)
    x = np.arange(1, 21)
    np.testing.assert_allclose(out[2, 3:-3], (2 * x - 0.5)[3:-3], atol=1e-9)


def test_bicubic_degrade_crops_to_a_multiple_of_the_scale():
    hr = np.random.RandomState(0).randint(0, 256, (37, 50, 3)).astype(np.uint8)
    assert bicubic_degrade(hr, 3).shape == (12, 16, 3)
    assert bicubic_degrade(hr, 2).dtype == np.uint8
