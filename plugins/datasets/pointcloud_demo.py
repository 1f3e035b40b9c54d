"""Demo point clouds: indoor-like rooms in the S3DIS layout of PointTransformerV2 (``pcr``).

Each room has a floor, four walls, boxes (tables, cabinets), cylinders (columns, bins) and clutter
blobs, sampled on the surfaces with position noise; colours depend loosely on the class (per
object hue jitter plus per-point noise), so geometry is needed to tell boxes from cylinders.
Written as ``<out_dir>/Area_<k>/room_<i>.pth`` (``torch.save`` of numpy ``coord`` (N, 3) float32
metres, ``color`` (N, 3) uint8, ``semantic_gt`` (N, 1) int64), the files the S3DIS readers of the
public codebases load. Areas 1-4 are for training, Area 5 for validation. Deterministic.
"""
import os
import os.path as osp

import numpy as np
import torch

from .registry import register_demo

CLASSES = ('floor', 'wall', 'box', 'cylinder', 'clutter')
PALETTE = [(150, 110, 70), (200, 200, 200), (220, 60, 60), (60, 90, 220), (90, 200, 90)]
BASE_COLOR = {0: (140, 120, 100), 1: (190, 190, 180), 2: (150, 110, 90), 3: (120, 120, 140),
              4: (110, 140, 110)}
DENSITY = 300  # points per square metre


def _rect(rng, origin, u, v, density):
    """Points on the parallelogram ``origin + s u + t v``, s, t in [0, 1]."""
    area = np.linalg.norm(np.cross(u, v))
    n = max(int(area * density), 4)
    s, t = rng.rand(n, 1), rng.rand(n, 1)
    return origin + s * u + t * v


def _box(rng, center, size, yaw, density):
    sx, sy, sz = size
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    lo = -np.array([sx, sy, 0]) / 2
    ex, ey, ez = np.array([sx, 0, 0]), np.array([0, sy, 0]), np.array([0, 0, sz])
    faces = [(lo + ez, ex, ey), (lo, ex, ez), (lo + ey, ex, ez), (lo, ey, ez), (lo + ex, ey, ez)]
    pts = np.concatenate([_rect(rng, o, u, v, density) for o, u, v in faces])
    return pts @ rot.T + center


def _cylinder(rng, center, radius, height, density):
    n_side = max(int(2 * np.pi * radius * height * density), 8)
    theta, z = rng.rand(n_side) * 2 * np.pi, rng.rand(n_side) * height
    side = np.stack([radius * np.cos(theta), radius * np.sin(theta), z], 1)
    n_top = max(int(np.pi * radius ** 2 * density), 4)
    r, theta = radius * np.sqrt(rng.rand(n_top)), rng.rand(n_top) * 2 * np.pi
    top = np.stack([r * np.cos(theta), r * np.sin(theta), np.full(n_top, height)], 1)
    return np.concatenate([side, top]) + center


def _blob(rng, center, scale, density):
    n = max(int(4 * np.pi * scale ** 2 * density), 10)
    d = rng.randn(n, 3)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return center + d * scale * (1 + 0.35 * rng.randn(n, 1)) * np.array([1.0, 0.8, 0.7])


def make_room(rng: np.random.RandomState):
    """One room: ``coord (N, 3)``, ``color (N, 3)`` uint8, ``label (N,)``."""
    lx, ly, h = rng.uniform(3.5, 5.5), rng.uniform(3.5, 5.5), rng.uniform(2.3, 2.8)
    parts = [(_rect(rng, np.zeros(3), np.array([lx, 0, 0]), np.array([0, ly, 0]), DENSITY), 0)]
    for o, u in [((0, 0, 0), (lx, 0, 0)), ((0, ly, 0), (lx, 0, 0)), ((0, 0, 0), (0, ly, 0)),
                 ((lx, 0, 0), (0, ly, 0))]:
        parts.append((_rect(rng, np.array(o, float), np.array(u, float),
                            np.array([0, 0, h]), DENSITY), 1))
    margin = 0.6
    for _ in range(rng.randint(2, 5)):
        size = rng.uniform([0.4, 0.4, 0.4], [1.3, 1.0, 1.1])
        center = np.array([rng.uniform(margin, lx - margin), rng.uniform(margin, ly - margin), 0])
        parts.append((_box(rng, center, size, rng.uniform(0, np.pi), DENSITY), 2))
    for _ in range(rng.randint(1, 4)):
        radius, height = rng.uniform(0.15, 0.4), rng.uniform(0.5, 2.0)
        center = np.array([rng.uniform(margin, lx - margin), rng.uniform(margin, ly - margin), 0])
        parts.append((_cylinder(rng, center, radius, height, DENSITY), 3))
    for _ in range(rng.randint(2, 5)):
        center = np.array([rng.uniform(0.3, lx - 0.3), rng.uniform(0.3, ly - 0.3),
                           rng.uniform(0.1, 1.2)])
        parts.append((_blob(rng, center, rng.uniform(0.1, 0.25), DENSITY), 4))
    coords, colors, labels = [], [], []
    for pts, label in parts:
        hue = np.asarray(BASE_COLOR[label], float) + rng.uniform(-40, 40, 3)  # per object
        colors.append(np.clip(hue + rng.randn(len(pts), 3) * 18, 0, 255))
        coords.append(pts + rng.randn(len(pts), 3) * 0.008)
        labels.append(np.full(len(pts), label))
    return (np.concatenate(coords).astype(np.float32), np.concatenate(colors).astype(np.uint8),
            np.concatenate(labels).astype(np.int64))


@register_demo('pointcloud')
def make_pointcloud_demo(out_dir: str, seed: int = 0, rooms_per_area: int = 6,
                         areas=(1, 2, 3, 4, 5)) -> None:
    """Write ``Area_<k>/room_<i>.pth`` for each area (Area 5: the validation scenes)."""
    for area in areas:
        folder = osp.join(out_dir, f'Area_{area}')
        os.makedirs(folder, exist_ok=True)
        for i in range(rooms_per_area):
            rng = np.random.RandomState(seed * 1000 + area * 100 + i)
            coord, color, label = make_room(rng)
            torch.save(dict(coord=coord, color=color, semantic_gt=label[:, None]),
                       osp.join(folder, f'room_{i}.pth'))
