"""The data pipeline of the official Group Pose code as mmpose transforms.

Group Pose (Liu et al., ICCV 2023, arXiv 2308.07313) trains with the DETR augmentation of its
official code (Michel-liu/GroupPose ``datasets/transforms.py``, ``datasets/coco.py``): a
horizontal flip, then with probability 1/2 a resize of the short side to 480..800 (long side at
most 1333), else a resize to 400 / 500 / 600, a random crop of 384..600 pixels per side and the
first resize again; it tests at short side 800, long side at most 1333. With mmcv's
``RandomChoice`` these transforms make that pipeline:

- :class:`GroupPoseRandomResize`: the official size rule (``int`` truncation, long-side cap),
  Pillow's bilinear resampling (what torchvision does on the official PIL images); keypoints,
  boxes and areas scaled;
- :class:`GroupPoseRandomSizeCrop`: people whose clipped box is empty are dropped, keypoints are
  clamped to the crop with their visibility kept, and the OKS area becomes the area of the
  clipped box;
- :class:`GroupPoseKeepLabelledPeople`: the official loader's filter (no crowd regions, no people
  without a labelled keypoint; training images left with nobody are skipped).

The resize and the crop keep mmpose's ``input_size`` / ``input_center`` / ``input_scale``, so
``BottomupPoseEstimator`` maps predictions back to the original image.
"""
from typing import Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from plugins.registry import TRANSFORMS

# what mmpose's bottom-up COCO-style datasets hold per person
PEOPLE_KEYS = ('bbox', 'bbox_score', 'keypoints', 'keypoints_visible', 'area', 'iscrowd',
               'num_keypoints', 'id', 'category_id', 'segmentation', 'raw_ann_info')


def select_people(results: dict, keep: np.ndarray) -> dict:
    """Keep the people where ``keep`` is True in every per-person field."""
    num = len(keep)
    for key in PEOPLE_KEYS:
        value = results.get(key)
        if value is None or np.ndim(value) == 0 or len(value) != num:
            continue
        if isinstance(value, np.ndarray):
            results[key] = value[keep]
        else:
            results[key] = [v for v, k in zip(value, keep) if k]
    return results


def official_resize_shape(w: int, h: int, size: int,
                          max_size: Optional[int] = None) -> Tuple[int, int]:
    """``(h, w)`` after resizing the short side to ``size``, the long side capped at
    ``max_size`` (official ``get_size_with_aspect_ratio``, truncating like it)."""
    if max_size is not None:
        short, long = float(min(w, h)), float(max(w, h))
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def _input_region(results: dict) -> None:
    """Start mmpose's record of which part of the original image the input shows."""
    if 'input_center' not in results:
        h, w = results['img_shape'][:2]
        results['input_center'] = np.array([w / 2, h / 2], dtype=np.float32)
        results['input_scale'] = np.array([w, h], dtype=np.float32)


@TRANSFORMS.register_module()
class GroupPoseRandomResize(BaseTransform):
    """Resize the short side to a size drawn from ``scales``, the long side at most ``max_size``.

    Official ``RandomResize``: ``scales=[480, 512, ..., 800], max_size=1333`` in training,
    ``scales=[800], max_size=1333`` at test time (no padding at batch 1: leave the data
    preprocessor's ``pad_size_divisor`` at 1).
    """

    def __init__(self, scales: Sequence[int], max_size: Optional[int] = None) -> None:
        if not scales:
            raise ValueError('GroupPoseRandomResize needs at least one size in scales')
        self.scales, self.max_size = list(scales), max_size

    def transform(self, results: dict) -> dict:
        _input_region(results)
        h, w = results['img'].shape[:2]
        size = self.scales[np.random.randint(len(self.scales))]
        new_h, new_w = official_resize_shape(w, h, size, self.max_size)
        results['img'] = mmcv.imresize(results['img'], (new_w, new_h), interpolation='bilinear',
                                       backend='pillow')
        rw, rh = new_w / w, new_h / h
        if results.get('keypoints') is not None:
            results['keypoints'] = results['keypoints'] * np.array([rw, rh], np.float32)
        if results.get('bbox') is not None:
            results['bbox'] = results['bbox'] * np.array([rw, rh, rw, rh], np.float32)
        if results.get('area') is not None:
            results['area'] = np.asarray(results['area'], np.float32) * (rw * rh)
        results['img_shape'] = (new_h, new_w)
        results['input_size'] = (new_w, new_h)
        return results


@TRANSFORMS.register_module()
class GroupPoseRandomSizeCrop(BaseTransform):
    """A crop of random width and height in ``[min_size, min(side, max_size)]`` at a random place.

    Official ``RandomSizeCrop(384, 600)``: boxes are clipped to the crop and people whose box is
    left empty are dropped; keypoints are clamped to the crop, keeping their visibility; the
    OKS area becomes the area of the clipped box.
    """

    def __init__(self, min_size: int, max_size: int) -> None:
        if min_size > max_size:
            raise ValueError(f'min_size ({min_size}) must not exceed max_size ({max_size})')
        self.min_size, self.max_size = min_size, max_size

    def transform(self, results: dict) -> dict:
        _input_region(results)
        h, w = results['img'].shape[:2]
        crop_w = np.random.randint(min(self.min_size, w), min(w, self.max_size) + 1)
        crop_h = np.random.randint(min(self.min_size, h), min(h, self.max_size) + 1)
        top = np.random.randint(0, h - crop_h + 1)
        left = np.random.randint(0, w - crop_w + 1)
        results['img'] = results['img'][top:top + crop_h, left:left + crop_w]
        limit = np.array([crop_w, crop_h], np.float32)
        if results.get('bbox') is not None:
            corners = results['bbox'].reshape(-1, 2, 2) - np.array([left, top], np.float32)
            corners = np.clip(np.minimum(corners, limit), 0, None)
            keep = (corners[:, 1] > corners[:, 0]).all(1)
            results['bbox'] = corners.reshape(-1, 4)
            results['area'] = (corners[:, 1] - corners[:, 0]).prod(1).astype(np.float32)
            select_people(results, keep)
        if results.get('keypoints') is not None:
            kpts = results['keypoints'] - np.array([left, top], np.float32)
            results['keypoints'] = np.clip(np.minimum(kpts, limit), 0, None)
        # the input now shows the crop: update the region in original-image pixels
        per_pixel = results['input_scale'] / np.array([w, h], np.float32)
        corner = results['input_center'] - results['input_scale'] / 2
        results['input_scale'] = (limit * per_pixel).astype(np.float32)
        results['input_center'] = (corner + (np.array([left, top]) + limit / 2) *
                                   per_pixel).astype(np.float32)
        results['img_shape'] = (crop_h, crop_w)
        results['input_size'] = (crop_w, crop_h)
        return results


@TRANSFORMS.register_module()
class GroupPoseKeepLabelledPeople(BaseTransform):
    """Drop crowd regions and people without a labelled keypoint (the official loader's filter);
    with ``skip_empty`` (training), an image left with nobody is skipped (returning ``None``
    makes mmengine's dataset draw another; the official training set leaves them out)."""

    def __init__(self, skip_empty: bool = True) -> None:
        self.skip_empty = skip_empty

    def transform(self, results: dict) -> Optional[dict]:
        visible = results.get('keypoints_visible')
        if visible is None or len(visible) == 0:
            return None if self.skip_empty else results
        keep = np.asarray(visible).reshape(len(visible), -1).max(1) > 0
        crowd = results.get('iscrowd')
        if crowd is not None and np.ndim(crowd) > 0 and len(crowd) == len(keep):
            keep &= np.asarray(crowd).reshape(-1) == 0
        select_people(results, keep)
        if self.skip_empty and not keep.any():
            return None
        return results
