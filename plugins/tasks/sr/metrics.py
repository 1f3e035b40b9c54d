"""PSNR and SSIM as the super-resolution literature computes them.

The numbers in the SR papers' tables (EDSR, SwinIR, CATANet, DLGSANet, ...) come from BasicSR's
``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``, themselves a port of the
MATLAB evaluation scripts:

- both images in [0, 255] (the network output is first rounded to uint8, as when it is saved);
- ``crop_border`` pixels (= the scale) removed on every side;
- the luma of ITU-R BT.601 with studio swing, ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``
  (values in [16, 235], MATLAB's ``rgb2ycbcr``), not JPEG's full-range Y of OpenCV;
- PSNR = 10 log10(255^2 / MSE) over the Y channel of the image;
- SSIM of Wang et al. (2004) with an 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03,
  L = 255, averaged over the 'valid' positions (no padding).

Per-image values are averaged over the data set (the papers' tables are means of per-image PSNR).
"""
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmengine.evaluator import BaseMetric

from plugins.registry import METRICS
from .imresize import imresize

#: BT.601 luma weights of MATLAB's rgb2ycbcr for RGB in [0, 1], giving Y in [16, 235]
Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966])


def to_y_channel(img: np.ndarray) -> np.ndarray:
    """Y of an RGB image in [0, 255] (H, W, 3), as float in [16, 235]; gray images pass through.

    Computed like BasicSR's ``to_y_channel`` (float32 input scaled to [0, 1], weights in float64,
    result back in float32), so the metrics match its numbers to the last digit.
    """
    img = img.astype(np.float32) / 255.
    if img.ndim == 3 and img.shape[2] == 3:
        y = np.dot(img, Y_WEIGHTS_RGB) + 16.0
        img = (y / 255.).astype(np.float32)[..., None]
    elif img.ndim == 2:
        img = img[..., None]
    return img * 255.


def _prepare(img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool):
    if img.shape != img2.shape:
        raise ValueError(f'images differ in shape: {img.shape} vs {img2.shape}')
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img, img2 = to_y_channel(img), to_y_channel(img2)
    return img.astype(np.float64), img2.astype(np.float64)


def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int,
                   test_y_channel: bool = True) -> float:
    """PSNR in dB of two (H, W, C) RGB (or (H, W) gray) images with values in [0, 255]."""
    img, img2 = _prepare(img, img2, crop_border, test_y_channel)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float('inf')
    return float(10. * np.log10(255. * 255. / mse))


def _ssim_single_channel(img: np.ndarray, img2: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    def filt(a):  # 'valid' filtering: drop the 5 pixels whose window leaves the image
        return cv2.filter2D(a, -1, window)[5:-5, 5:-5]

    mu1, mu2 = filt(img), filt(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 ** 2, mu2 ** 2, mu1 * mu2
    sigma1_sq = filt(img ** 2) - mu1_sq
    sigma2_sq = filt(img2 ** 2) - mu2_sq
    sigma12 = filt(img * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int,
                   test_y_channel: bool = True) -> float:
    """SSIM of two (H, W, C) RGB (or (H, W) gray) images in [0, 255], mean over channels."""
    img, img2 = _prepare(img, img2, crop_border, test_y_channel)
    if min(img.shape[:2]) < 11:
        raise ValueError(f'SSIM needs at least 11x11 pixels after cropping, got {img.shape[:2]}')
    return float(np.mean([_ssim_single_channel(img[..., i], img2[..., i])
                          for i in range(img.shape[2])]))


class _SRImageMetric(BaseMetric):
    """Shared by SRPSNR / SRSSIM: one value per image, means over the images."""
    metric_name = ''

    def __init__(self,
                 crop_border: Optional[int] = None,
                 test_y_channel: bool = True,
                 with_bicubic: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.crop_border = crop_border
        self.test_y_channel = test_y_channel
        self.with_bicubic = with_bicubic

    def compute_one(self, pred: np.ndarray, gt: np.ndarray, crop_border: int) -> float:
        raise NotImplementedError

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        lqs = (data_batch or {}).get('inputs', [None] * len(data_samples))
        for sample, lq in zip(data_samples, lqs):
            pred, gt = _hwc_uint8(sample['pred_img']), _hwc_uint8(sample['gt_img'])
            crop = self.crop_border
            scale = int(sample.get('scale', 0))
            if crop is None:  # the literature's convention: crop as many pixels as the scale
                crop = scale
            value = self.compute_one(pred, gt, crop)
            baseline = float('nan')
            if self.with_bicubic and lq is not None:
                up = imresize(_hwc_uint8(lq), scale)[:gt.shape[0], :gt.shape[1]]
                baseline = self.compute_one(up, gt, crop)
            self.results.append((sample.get('dataset_name', ''), value, baseline))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """Mean over all images (``PSNR``) and, with several data sets, over each
        (``Set5/PSNR``, ``Set14/PSNR``, ...); with ``with_bicubic`` also the same metric of
        MATLAB-bicubic upsampling of the LR inputs (``PSNR_bicubic``), the baseline of the
        papers' tables."""
        metrics = {self.metric_name: float(np.mean([r[1] for r in results]))}
        if self.with_bicubic:
            metrics[f'{self.metric_name}_bicubic'] = float(np.mean([r[2] for r in results]))
        names = sorted({r[0] for r in results})
        if len(names) > 1:
            for name in names:
                metrics[f'{name}/{self.metric_name}'] = float(
                    np.mean([r[1] for r in results if r[0] == name]))
        return metrics


def _hwc_uint8(img) -> np.ndarray:
    """A (C, H, W) tensor/array in [0, 255] or uint8 -> (H, W, C) uint8, rounded like a saved PNG."""
    if hasattr(img, 'detach'):
        img = img.detach().cpu().numpy()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img.transpose(1, 2, 0) if img.ndim == 3 else img


@METRICS.register_module()
class SRPSNR(_SRImageMetric):
    """Mean PSNR (dB) over the images, on the Y channel, borders of ``crop_border`` removed.

    Args:
        crop_border: pixels removed on each side; ``None`` takes the sample's ``scale``.
        test_y_channel: compute on BT.601 Y in [16, 235] (the literature) or on RGB.
        with_bicubic: also report ``PSNR_bicubic``, MATLAB-bicubic upsampling of the LR input.
    """
    default_prefix = 'sr'
    metric_name = 'PSNR'

    def compute_one(self, pred, gt, crop_border):
        return calculate_psnr(pred, gt, crop_border, self.test_y_channel)


@METRICS.register_module()
class SRSSIM(_SRImageMetric):
    """Mean SSIM over the images (Gaussian 11x11, sigma 1.5), Y channel, borders removed."""
    default_prefix = 'sr'
    metric_name = 'SSIM'

    def compute_one(self, pred, gt, crop_border):
        return calculate_ssim(pred, gt, crop_border, self.test_y_channel)
