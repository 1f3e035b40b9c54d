"""PSNR / SSIM as the SR literature computes them, on hand-made images with known values."""
import math

import numpy as np
import pytest
import torch

from plugins.tasks.sr.metrics import SRPSNR, SRSSIM, calculate_psnr, calculate_ssim, to_y_channel


def grey(value, h=32, w=32):
    return np.full((h, w, 3), value, np.uint8)


def test_y_channel_is_bt601_studio_swing():
    assert to_y_channel(grey(0))[0, 0, 0] == pytest.approx(16.0, abs=1e-4)
    assert to_y_channel(grey(255))[0, 0, 0] == pytest.approx(235.0, abs=1e-3)
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert to_y_channel(red)[0, 0, 0] == pytest.approx(16 + 65.481, abs=1e-3)


def test_psnr_of_a_constant_offset_on_y():
    # grey +10 in RGB is +10 * 219 / 255 on Y (the weights sum to 219)
    expected = 10 * math.log10(255 ** 2 / (10 * 219 / 255) ** 2)
    assert calculate_psnr(grey(100), grey(110), crop_border=0) == pytest.approx(expected,
                                                                               abs=1e-4)


def test_psnr_on_rgb_is_the_textbook_formula():
    assert calculate_psnr(grey(100), grey(110), 0, test_y_channel=False) == pytest.approx(
        20 * math.log10(255 / 10), abs=1e-9)


def test_identical_images_have_infinite_psnr_and_unit_ssim():
    img = np.random.RandomState(0).randint(0, 256, (40, 40, 3)).astype(np.uint8)
    assert calculate_psnr(img, img, 2) == float('inf')
    assert calculate_ssim(img, img, 2) == pytest.approx(1.0, abs=1e-12)


def test_crop_border_removes_the_scale_wide_border():
    a = grey(100)
    b = a.copy()
    b[:2] = 0
    b[:, -2:] = 255
    assert calculate_psnr(a, b, crop_border=2) == float('inf')
    assert calculate_psnr(a, b, crop_border=1) < 20


def test_ssim_of_constant_images_is_the_luminance_term():
    y1, y2 = 16 + 100 * 219 / 255, 16 + 150 * 219 / 255
    c1 = (0.01 * 255) ** 2
    expected = (2 * y1 * y2 + c1) / (y1 ** 2 + y2 ** 2 + c1)
    assert calculate_ssim(grey(100), grey(150), 0) == pytest.approx(expected, abs=1e-5)


def test_ssim_of_a_contrast_change_follows_the_formula():
    # y2 = 0.5 * y1 + 0.5 * mean: luminance term 1, contrast-structure 2 * 0.5 / (1 + 0.25)
    # (up to the constant c2, negligible for a strong texture)
    rng = np.random.RandomState(0)
    base = rng.randint(0, 2, (64, 64)) * 200 + 20
    a = np.repeat(base[..., None], 3, 2).astype(np.uint8)
    value = calculate_ssim(a, a // 2 + 60, 0, test_y_channel=False)
    assert 0.75 < value < 0.81


def test_metric_reports_each_set_and_the_bicubic_baseline():
    gt = torch.from_numpy(grey(120, 16, 16).transpose(2, 0, 1).copy())
    lq = gt[:, ::2, ::2].contiguous()
    samples = [dict(pred_img=gt.float() + 2, gt_img=gt, scale=2, dataset_name='Set5'),
               dict(pred_img=gt.float() + 4, gt_img=gt, scale=2, dataset_name='Set14')]
    metric = SRPSNR(with_bicubic=True)
    metric.process(dict(inputs=[lq, lq]), samples)
    out = metric.compute_metrics(metric.results)
    assert out['Set5/PSNR'] > out['Set14/PSNR']
    assert out['PSNR'] == pytest.approx((out['Set5/PSNR'] + out['Set14/PSNR']) / 2)
    assert out['PSNR_bicubic'] == float('inf')  # bicubic of a constant image is exact
    ssim = SRSSIM()
    ssim.process(None, samples)
    assert 0.9 < ssim.compute_metrics(ssim.results)['SSIM'] <= 1
