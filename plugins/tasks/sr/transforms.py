"""Data pipeline of SR: load an HR/LR pair, degrade on the fly, paired crop, flips, packing.

Inside the pipeline ``results['gt']`` is the HR image and ``results['lq']`` the LR image, both
(H, W, 3) uint8 RGB arrays (``lq`` is ``None`` until made when only HR is given).
"""
import random
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from plugins.registry import TRANSFORMS
from .imresize import bicubic_degrade

META_KEYS = ('gt_path', 'lq_path', 'img_name', 'dataset_name', 'scale')


@TRANSFORMS.register_module()
class LoadSRPair(BaseTransform):
    """Read ``gt_path`` (and ``lq_path`` when the data set has LR files) as RGB uint8."""

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def _read(self, path):
        img = mmcv.imread(path, flag='color', channel_order='rgb', backend='cv2')
        if img is None:
            raise FileNotFoundError(f'cannot read image {path!r}')
        return img

    def transform(self, results: dict) -> dict:
        results['gt'] = self._read(results['gt_path']) if results.get('gt_path') else None
        results['lq'] = self._read(results['lq_path']) if results.get('lq_path') else None
        if results['gt'] is None and results['lq'] is None:
            raise ValueError('a sample needs gt_path, lq_path or both')
        return results


@TRANSFORMS.register_module()
class SRBicubicDegradation(BaseTransform):
    """Make the LR image when only HR is given, and align HR with LR.

    - no ``lq``: crop HR to a multiple of ``scale`` and shrink it with MATLAB's bicubic
      (:func:`imresize`), the degradation of the SR benchmarks;
    - ``lq`` given: crop HR to ``scale x`` the LR size (benchmark HR images are often not a
      multiple of the scale; the LR files were made from the cropped HR).
    """

    def __init__(self, scale: Optional[int] = None) -> None:
        self.scale = scale

    def transform(self, results: dict) -> dict:
        scale = int(self.scale or results['scale'])
        gt, lq = results['gt'], results.get('lq')
        if lq is None:
            h, w = gt.shape[:2]
            results['gt'] = gt[:h - h % scale, :w - w % scale]
            results['lq'] = bicubic_degrade(results['gt'], scale)
        elif gt is not None:
            lh, lw = lq.shape[:2]
            if gt.shape[0] < lh * scale or gt.shape[1] < lw * scale:
                raise ValueError(f'HR {gt.shape[:2]} is smaller than {scale} x LR {lq.shape[:2]} '
                                 f'for {results.get("gt_path")}: wrong scale or LR folder?')
            results['gt'] = gt[:lh * scale, :lw * scale]
        return results


@TRANSFORMS.register_module()
class SRPairedRandomCrop(BaseTransform):
    """Random ``lq_patch_size`` LR patch and the matching ``scale x`` larger HR patch.

    Give the LR size (``lq_patch_size``: the same for every scale, as both papers train: 64 for
    CATANet, 48 for DLGSANet) or the HR size (``gt_patch_size``, BasicSR's ``gt_size``).
    When no LR image exists yet, the HR patch is cropped first and degraded by bicubic
    (cheaper than degrading the whole image at every iteration).
    """

    def __init__(self, lq_patch_size: Optional[int] = None, gt_patch_size: Optional[int] = None,
                 scale: Optional[int] = None) -> None:
        if (lq_patch_size is None) == (gt_patch_size is None):
            raise ValueError('give exactly one of lq_patch_size and gt_patch_size')
        self.lq_patch_size = lq_patch_size
        self.gt_patch_size = gt_patch_size
        self.scale = scale

    def transform(self, results: dict) -> dict:
        scale = int(self.scale or results['scale'])
        if self.gt_patch_size is not None and self.gt_patch_size % scale:
            raise ValueError(f'gt_patch_size {self.gt_patch_size} is not a multiple of the '
                             f'scale {scale}')
        lq_size = self.lq_patch_size or self.gt_patch_size // scale
        gt_size = lq_size * scale
        gt, lq = results['gt'], results.get('lq')
        if lq is None:
            h, w = gt.shape[:2]
            if h < gt_size or w < gt_size:
                raise ValueError(f'HR image {h}x{w} is smaller than the patch '
                                 f'{gt_size} ({results.get("gt_path")})')
            top = random.randint(0, (h - gt_size) // scale) * scale
            left = random.randint(0, (w - gt_size) // scale) * scale
            results['gt'] = gt[top:top + gt_size, left:left + gt_size]
            results['lq'] = bicubic_degrade(results['gt'], scale)
            return results
        h, w = lq.shape[:2]
        if h < lq_size or w < lq_size:
            raise ValueError(f'LR image {h}x{w} is smaller than the LR patch {lq_size} '
                             f'({results.get("lq_path")})')
        if gt.shape[0] < h * scale or gt.shape[1] < w * scale:
            raise ValueError(f'HR {gt.shape[:2]} does not match {scale} x LR {lq.shape[:2]} '
                             f'({results.get("gt_path")})')
        top, left = random.randint(0, h - lq_size), random.randint(0, w - lq_size)
        results['lq'] = lq[top:top + lq_size, left:left + lq_size]
        results['gt'] = gt[top * scale:(top + lq_size) * scale,
                           left * scale:(left + lq_size) * scale]
        return results


@TRANSFORMS.register_module()
class SRRandomFlip(BaseTransform):
    """Flip HR and LR together: left-right with ``hflip_prob``, up-down with ``vflip_prob``."""

    def __init__(self, hflip_prob: float = 0.5, vflip_prob: float = 0.5) -> None:
        self.hflip_prob = hflip_prob
        self.vflip_prob = vflip_prob

    def transform(self, results: dict) -> dict:
        if random.random() < self.hflip_prob:
            for key in ('gt', 'lq'):
                results[key] = results[key][:, ::-1]
        if random.random() < self.vflip_prob:
            for key in ('gt', 'lq'):
                results[key] = results[key][::-1]
        return results


@TRANSFORMS.register_module()
class SRRandomTranspose(BaseTransform):
    """Swap height and width of HR and LR together with probability ``prob``.

    With the two flips this gives all 8 dihedral transforms (BasicSR's ``use_rot``).
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if random.random() < self.prob:
            for key in ('gt', 'lq'):
                results[key] = results[key].transpose(1, 0, 2)
        return results


def _to_chw_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackSRInputs(BaseTransform):
    """``inputs``: the LR image (3, h, w) uint8; ``data_samples``: a data element holding
    ``gt_img`` (3, H, W) uint8 (when known) and the paths, name, data set and scale."""

    def transform(self, results: dict) -> dict:
        if results.get('lq') is None:
            raise ValueError('no LR image: put SRBicubicDegradation (or SRPairedRandomCrop) in '
                             'the pipeline when the data set gives HR images only')
        sample = BaseDataElement(metainfo={k: results[k] for k in META_KEYS if k in results})
        if results.get('gt') is not None:
            sample.gt_img = _to_chw_tensor(results['gt'])
        sample.set_metainfo(dict(lq_shape=tuple(results['lq'].shape[:2])))
        return dict(inputs=_to_chw_tensor(results['lq']), data_samples=sample)
