"""Point cloud data pipeline: loading, augmentation, grid sampling and packing.

Each transform reads and writes a dict whose per-point arrays (``coord``, ``color``, ``normal``,
``segment``) share their first dimension; transforms that select points apply the selection to
all of them. The augmentations and their defaults follow the PointTransformerV2 (``pcr``) /
Pointcept pipelines that ConDaFormer's official configs use. Randomness is numpy's (seeded by
mmengine's ``randomness`` setting and per dataloader worker).
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from plugins.registry import TRANSFORMS

POINT_KEYS = ('coord', 'color', 'normal', 'segment', 'grid_coord')


def _select(results: dict, idx: np.ndarray, skip: Sequence[str] = ()) -> dict:
    for key in POINT_KEYS:
        if key in results and key not in skip:
            results[key] = results[key][idx]
    return results


@TRANSFORMS.register_module()
class LoadPointCloudFromFile(BaseTransform):
    """Read one scene of the processed S3DIS / ScanNet layouts.

    ``results['path']`` is either a ``.pth`` file of the PointTransformerV2 (``pcr``) layout
    (a ``torch.save``d dict of numpy arrays ``coord``, ``color``, ``normal``, ``semantic_gt`` /
    ``semantic_gt20``), or a scene folder of the Pointcept layout (``coord.npy``, ``color.npy``,
    ``normal.npy``, ``segment.npy`` / ``segment20.npy``). ``results['label_keys']`` lists the label
    names to try; negative labels become ``ignore_index``.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index

    @staticmethod
    def _read(path: str) -> Dict[str, np.ndarray]:
        if osp.isdir(path):
            return {name[:-4]: np.load(osp.join(path, name)) for name in os.listdir(path)
                    if name.endswith('.npy')}
        data = torch.load(path, map_location='cpu', weights_only=True)
        return {k: (v.numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in data.items()}

    def transform(self, results: dict) -> dict:
        data = self._read(results['path'])
        results['coord'] = data['coord'].astype(np.float32)
        n = len(results['coord'])
        results['color'] = (data['color'].astype(np.float32) if 'color' in data else
                            np.zeros((n, 3), np.float32))
        if 'normal' in data:
            results['normal'] = data['normal'].astype(np.float32)
        label = next((data[k] for k in results.get('label_keys', ('segment',)) if k in data),
                     None)
        if label is None:
            label = np.full(n, self.ignore_index)
        label = label.reshape(-1).astype(np.int64)
        label[label < 0] = self.ignore_index
        results['segment'] = label
        results['num_points'] = n
        return results


@TRANSFORMS.register_module()
class PointCenterShift(BaseTransform):
    """Centre the cloud in x, y (and put its floor at z = 0 with ``apply_z``)."""

    def __init__(self, apply_z: bool = True) -> None:
        self.apply_z = apply_z

    def transform(self, results: dict) -> dict:
        lo, hi = results['coord'].min(0), results['coord'].max(0)
        shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] if self.apply_z else 0])
        results['coord'] = results['coord'] - shift.astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointPositiveShift(BaseTransform):
    """Shift the cloud so that its minimum corner is the origin."""

    def transform(self, results: dict) -> dict:
        results['coord'] = results['coord'] - results['coord'].min(0)
        return results


@TRANSFORMS.register_module()
class PointRandomDropout(BaseTransform):
    """With probability ``dropout_application_ratio``, drop a ``dropout_ratio`` share of points."""

    def __init__(self, dropout_ratio: float = 0.2, dropout_application_ratio: float = 0.5):
        self.ratio, self.prob = dropout_ratio, dropout_application_ratio

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.prob:
            n = len(results['coord'])
            keep = np.random.choice(n, max(1, int(n * (1 - self.ratio))), replace=False)
            _select(results, np.sort(keep))
        return results


@TRANSFORMS.register_module()
class PointRandomRotate(BaseTransform):
    """Rotate about ``axis`` by a uniform angle in ``angle`` (in units of pi), probability ``p``.

    ``center``: rotation centre (default: the centre of the bounding box). Normals rotate too.
    """

    def __init__(self, angle: Sequence[float] = (-1, 1), axis: str = 'z',
                 center: Optional[Sequence[float]] = None, p: float = 0.5) -> None:
        if axis not in ('x', 'y', 'z'):
            raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
        self.angle, self.axis, self.center, self.p = angle, axis, center, p

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.p:
            return results
        theta = np.random.uniform(self.angle[0], self.angle[1]) * np.pi
        c, s = np.cos(theta), np.sin(theta)
        rot = {'x': [[1, 0, 0], [0, c, -s], [0, s, c]], 'y': [[c, 0, s], [0, 1, 0], [-s, 0, c]],
               'z': [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[self.axis]
        rot = np.array(rot, dtype=np.float32)
        coord = results['coord']
        center = (np.asarray(self.center, np.float32) if self.center is not None else
                  (coord.min(0) + coord.max(0)) / 2)
        results['coord'] = (coord - center) @ rot.T + center
        if 'normal' in results:
            results['normal'] = results['normal'] @ rot.T
        return results


@TRANSFORMS.register_module()
class PointRandomScale(BaseTransform):
    """Scale coordinates by a uniform factor in ``scale`` (per axis if ``anisotropic``)."""

    def __init__(self, scale: Sequence[float] = (0.95, 1.05), anisotropic: bool = False):
        self.scale, self.anisotropic = scale, anisotropic

    def transform(self, results: dict) -> dict:
        factor = np.random.uniform(self.scale[0], self.scale[1], 3 if self.anisotropic else 1)
        results['coord'] = results['coord'] * factor.astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointRandomFlip(BaseTransform):
    """Mirror x, and independently y, each with probability ``p`` (normals too)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def transform(self, results: dict) -> dict:
        for axis in (0, 1):
            if np.random.rand() < self.p:
                results['coord'][:, axis] *= -1
                if 'normal' in results:
                    results['normal'][:, axis] *= -1
        return results


@TRANSFORMS.register_module()
class PointRandomJitter(BaseTransform):
    """Add Gaussian noise of std ``sigma``, clipped to ``[-clip, clip]``, to the coordinates."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05) -> None:
        self.sigma, self.clip = sigma, clip

    def transform(self, results: dict) -> dict:
        noise = np.clip(self.sigma * np.random.randn(*results['coord'].shape), -self.clip,
                        self.clip)
        results['coord'] = results['coord'] + noise.astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointElasticDistortion(BaseTransform):
    """Elastic distortion: smooth random displacement fields at several granularities.

    ``distortion_params``: ``[[granularity, magnitude], ...]`` in metres (the official default
    ``[[0.2, 0.4], [0.8, 1.6]]``); applied with probability ``p``.
    """

    def __init__(self, distortion_params=((0.2, 0.4), (0.8, 1.6)), p: float = 0.95) -> None:
        self.params, self.p = distortion_params, p

    @staticmethod
    def distort(coord: np.ndarray, granularity: float, magnitude: float) -> np.ndarray:
        from scipy.interpolate import RegularGridInterpolator
        from scipy.ndimage import convolve1d
        lo = coord.min(0)
        dims = ((coord - lo).max(0) // granularity).astype(int) + 3
        noise = np.random.randn(*dims, 3).astype(np.float32)
        blur = np.ones(3, np.float32) / 3
        for _ in range(2):
            for axis in range(3):
                noise = convolve1d(noise, blur, axis=axis, mode='constant')
        axes = [np.linspace(d_lo - granularity, d_lo + granularity * (d - 2), d)
                for d_lo, d in zip(lo, dims)]
        interp = RegularGridInterpolator(axes, noise, bounds_error=False, fill_value=0)
        return coord + interp(coord).astype(np.float32) * magnitude

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            for granularity, magnitude in self.params:
                results['coord'] = self.distort(results['coord'], granularity, magnitude)
        return results


@TRANSFORMS.register_module()
class PointChromaticAutoContrast(BaseTransform):
    """Stretch colours to [0, 255] and blend with the original (probability ``p``)."""

    def __init__(self, p: float = 0.2, blend_factor: Optional[float] = None) -> None:
        self.p, self.blend_factor = p, blend_factor

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            color = results['color']
            lo, hi = color.min(0, keepdims=True), color.max(0, keepdims=True)
            contrast = (color - lo) * (255 / np.maximum(hi - lo, 1e-6))
            blend = np.random.rand() if self.blend_factor is None else self.blend_factor
            results['color'] = ((1 - blend) * color + blend * contrast).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointChromaticTranslation(BaseTransform):
    """Add one random colour offset in ``[-ratio, ratio] * 255`` (probability ``p``)."""

    def __init__(self, p: float = 0.95, ratio: float = 0.05) -> None:
        self.p, self.ratio = p, ratio

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            shift = (np.random.rand(1, 3) - 0.5) * 255 * 2 * self.ratio
            results['color'] = np.clip(results['color'] + shift, 0, 255).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointChromaticJitter(BaseTransform):
    """Add per-point Gaussian colour noise of std ``std * 255`` (probability ``p``)."""

    def __init__(self, p: float = 0.95, std: float = 0.005) -> None:
        self.p, self.std = p, std

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            noise = np.random.randn(*results['color'].shape) * self.std * 255
            results['color'] = np.clip(results['color'] + noise, 0, 255).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointRandomColorDrop(BaseTransform):
    """Multiply the colours by ``color_augment`` (0: drop them) with probability ``p``."""

    def __init__(self, p: float = 0.2, color_augment: float = 0.0) -> None:
        self.p, self.color_augment = p, color_augment

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            results['color'] = results['color'] * self.color_augment
        return results


@TRANSFORMS.register_module()
class PointNormalizeColor(BaseTransform):
    """Colours from [0, 255] to [-1, 1] (``mode='symmetric'``, ScanNet) or [0, 1] (S3DIS)."""

    def __init__(self, mode: str = 'symmetric') -> None:
        if mode not in ('symmetric', 'unit'):
            raise ValueError(f"mode must be 'symmetric' or 'unit', got {mode!r}")
        self.mode = mode

    def transform(self, results: dict) -> dict:
        color = results['color']
        results['color'] = (color / 127.5 - 1 if self.mode == 'symmetric' else
                            color / 255.).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PointSphereCrop(BaseTransform):
    """Keep the ``point_max`` points nearest to a centre (a random point, or the cloud centre)."""

    def __init__(self, point_max: int = 80000, mode: str = 'random') -> None:
        if mode not in ('random', 'center'):
            raise ValueError(f"mode must be 'random' or 'center', got {mode!r}")
        self.point_max, self.mode = point_max, mode

    def transform(self, results: dict) -> dict:
        coord = results['coord']
        if len(coord) <= self.point_max:
            return results
        center = (coord[np.random.randint(len(coord))] if self.mode == 'random' else
                  (coord.min(0) + coord.max(0)) / 2)
        dist = ((coord - center) ** 2).sum(1)
        keep = np.sort(np.argpartition(dist, self.point_max - 1)[:self.point_max])
        return _select(results, keep)


@TRANSFORMS.register_module()
class PointShuffle(BaseTransform):
    """Random permutation of the points."""

    def transform(self, results: dict) -> dict:
        return _select(results, np.random.permutation(len(results['coord'])))


@TRANSFORMS.register_module()
class PointGridSample(BaseTransform):
    """Voxelise: one point per ``voxel_size`` voxel, with its integer ``grid_coord``.

    ``mode='train'``: a random point of each voxel, all per-point arrays (labels included) cut
    to those points. ``mode='test'``: the first point of each voxel as input; the labels stay on
    all original points, ``inverse`` maps each original point to its voxel's point and
    ``eval_coord`` keeps the original coordinates (evaluation and drawing use all points).
    """

    def __init__(self, voxel_size: float = 0.02, mode: str = 'train') -> None:
        if mode not in ('train', 'test'):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        self.voxel_size, self.mode = voxel_size, mode

    def transform(self, results: dict) -> dict:
        coord = results['coord']
        grid = np.floor(coord / self.voxel_size).astype(np.int64)
        grid -= grid.min(0)
        dims = grid.max(0) + 1
        key = np.ravel_multi_index(grid.T, dims)
        order = np.argsort(key, kind='stable')
        _, inverse, counts = np.unique(key[order], return_inverse=True, return_counts=True)
        starts = np.cumsum(np.insert(counts, 0, 0)[:-1])
        if self.mode == 'train':
            pick = order[starts + np.random.randint(0, counts.max(), len(counts)) % counts]
            _select(results, pick)
        else:
            pick = order[starts]
            results['inverse'] = np.empty(len(coord), np.int64)
            results['inverse'][order] = inverse
            results['eval_coord'] = coord.copy()
            _select(results, pick, skip=('segment',))
        results['grid_coord'] = grid[pick]
        return results


def fnv_hash(grid: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a hash of integer voxel coordinates ``(N, 3)`` (the official ``Voxelize``
    key: with numpy's default sort, points of a voxel come in the official order)."""
    keys = np.full(len(grid), 14695981039346656037, dtype=np.uint64)
    for column in grid.astype(np.uint64, copy=False).T:
        keys = np.bitwise_xor(keys * np.uint64(1099511628211), column)
    return keys


@TRANSFORMS.register_module()
class PointTestTimeAug(BaseTransform):
    """The official test protocol: augmented copies of the cloud, each voxelised into views.

    For each list of transforms in ``augments`` (ConDaFormer's configs: z rotations by 0, 1/2, 1,
    3/2 pi at scales 1, 0.95, 1.05, and for ScanNet also both mirrors) a copy of the cloud is
    transformed and voxelised (FNV key, numpy's sort, as the official ``Voxelize``):

    - ``mode='fragments'`` (official test mode): view ``i`` holds the ``(i mod c)``-th point of
      every voxel of ``c`` points, so each point is the input of some view and is scored there;
    - ``mode='first'`` (official validation mode, the light one): one view of the first point of
      each voxel; every point takes its voxel's score.

    ``post`` transforms run on each view (e.g. ``PointCenterShift(apply_z=False)``). The views
    are concatenated: ``coord``, ``color``, ``normal``, ``grid_coord`` hold all their rows,
    ``view`` says which view a row belongs to, and ``vote_point`` / ``vote_row`` list which
    original point each row's softmax is added to. The segmentor runs the views, sums the
    softmax of every vote per point and predicts the arg-max (official ``SegmentationTest``).
    Labels (``segment``) stay on the original points; ``eval_coord`` keeps their coordinates.
    """

    def __init__(self, voxel_size: float, augments: Optional[Sequence[Sequence[dict]]] = None,
                 mode: str = 'fragments', post: Sequence[dict] = ()) -> None:
        if mode not in ('fragments', 'first'):
            raise ValueError(f"mode must be 'fragments' or 'first', got {mode!r}")
        self.voxel_size, self.mode = voxel_size, mode
        self.augments = [[TRANSFORMS.build(t) for t in aug] for aug in (augments or [[]])]
        self.post = [TRANSFORMS.build(t) for t in post]

    def _views(self, cloud: dict):
        """``(view, vote_point, vote_row)`` triples of one augmented copy; rows of the view."""
        grid = np.floor(cloud['coord'] / self.voxel_size).astype(np.int64)
        grid -= grid.min(0)
        keys = fnv_hash(grid)
        order = np.argsort(keys)
        _, inverse, counts = np.unique(keys[order], return_inverse=True, return_counts=True)
        starts = np.cumsum(np.insert(counts, 0, 0)[:-1])
        if self.mode == 'first':
            rows = order[starts]
            vote_row = np.empty(len(grid), np.int64)
            vote_row[order] = inverse
            picks = [(rows, np.arange(len(grid)), vote_row)]
        else:
            picks = []
            for i in range(int(counts.max())):
                rows = order[starts + i % counts]
                picks.append((rows, rows, np.arange(len(rows))))
        for rows, vote_point, vote_row in picks:
            view = {k: v[rows] for k, v in cloud.items()}
            view['grid_coord'] = grid[rows]
            for t in self.post:
                view = t(view)
            yield view, vote_point, vote_row

    def transform(self, results: dict) -> dict:
        keys = [k for k in ('coord', 'color', 'normal') if k in results]
        parts, points, rows, views = {k: [] for k in keys + ['grid_coord']}, [], [], []
        num_rows = 0
        for aug in self.augments:
            cloud = {k: results[k].copy() for k in keys}
            for t in aug:
                cloud = t(cloud)
            for view, vote_point, vote_row in self._views(cloud):
                for k in parts:
                    parts[k].append(view[k])
                points.append(vote_point)
                rows.append(vote_row + num_rows)
                views.append(np.full(len(view['coord']), len(views), np.int64))
                num_rows += len(view['coord'])
        results['eval_coord'] = results['coord'].copy()
        results.update({k: np.concatenate(v) for k, v in parts.items()})
        results['view'] = np.concatenate(views)
        results['vote_point'], results['vote_row'] = np.concatenate(points), np.concatenate(rows)
        return results


@TRANSFORMS.register_module()
class PackPointCloudInputs(BaseTransform):
    """``inputs = dict(coord, grid_coord, feat)`` and a data sample with ``gt_labels``.

    ``feat`` is the concatenation of ``feat_keys`` (``coord`` after the augmentations, then the
    normalised colour and normals as the official configs). The data sample also carries
    ``inverse`` and ``eval_coord`` in test mode, the views' votes after
    :class:`PointTestTimeAug` (``inputs['view']``, ``vote_point``, ``vote_row``), and the
    metainfo keys.
    """

    def __init__(self, feat_keys: Sequence[str] = ('coord', 'color'),
                 meta_keys: Sequence[str] = ('name', 'path', 'num_points')) -> None:
        self.feat_keys, self.meta_keys = tuple(feat_keys), tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'grid_coord' not in results:
            raise KeyError('PackPointCloudInputs needs grid_coord: put PointGridSample in the '
                           'pipeline before it')
        missing = [k for k in self.feat_keys if k not in results]
        if missing:
            raise KeyError(f'PackPointCloudInputs(feat_keys={self.feat_keys}): the cloud has no '
                           f'{missing}; load them or drop them from feat_keys')
        feat = np.concatenate([results[k].reshape(len(results['coord']), -1)
                               for k in self.feat_keys], axis=1)
        inputs = dict(coord=torch.from_numpy(np.ascontiguousarray(results['coord'])).float(),
                      grid_coord=torch.from_numpy(np.ascontiguousarray(results['grid_coord'])),
                      feat=torch.from_numpy(np.ascontiguousarray(feat)).float())
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'segment' in results:
            sample.gt_labels = torch.from_numpy(np.ascontiguousarray(results['segment'])).long()
        if 'inverse' in results:
            sample.inverse = torch.from_numpy(results['inverse'])
        if 'view' in results:
            inputs['view'] = torch.from_numpy(results['view'])
            sample.vote_point = torch.from_numpy(results['vote_point'])
            sample.vote_row = torch.from_numpy(results['vote_row'])
        if 'eval_coord' in results:
            sample.eval_coord = torch.from_numpy(results['eval_coord']).float()
        return dict(inputs=inputs, data_samples=sample)
