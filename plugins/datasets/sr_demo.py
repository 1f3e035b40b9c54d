"""Demo data of super-resolution: real photographs that ship inside scikit-image.

Layout (the benchmark layout that ``SRBenchmarkDataset`` / ``SRFolderDataset`` read)::

    <out_dir>/test/HR/{astronaut,chelsea,coffee,rocket}.png          real photos (test set)
    <out_dir>/test/LR_bicubic/X2/<name>x2.png                        MATLAB-bicubic x2 LR
    <out_dir>/train/HR/<source>_<k>.png                              crops of *other* images
    <out_dir>/train/LR_bicubic/X2/<source>_<k>x2.png

The test photographs are never used for training. Training crops come from the package's other
images (motorcycle stereo pair, Hubble deep field, IHC slide, retina; and the grey ones — camera,
brick, grass, gravel, moon, coins, page, text — given a random colour tint so that the network
sees colour). LR images are made with :func:`plugins.tasks.sr.imresize.imresize`, the MATLAB
bicubic of the SR literature.
"""
import os
import os.path as osp

import cv2
import numpy as np

from .registry import register_demo

TEST_IMAGES = ('astronaut', 'chelsea', 'coffee', 'rocket')
TRAIN_COLOUR = ('motorcycle_left', 'motorcycle_right', 'hubble_deep_field', 'immunohistochemistry',
                'retina')
TRAIN_GREY = ('camera', 'brick', 'grass', 'gravel', 'moon', 'coins', 'page', 'text')


def load_photograph(name: str) -> np.ndarray:
    """A photograph that ships with scikit-image, as an RGB (or grey) uint8 array."""
    import skimage.data
    if name.startswith('motorcycle'):
        left, right, _ = skimage.data.stereo_motorcycle()
        img = left if name.endswith('left') else right
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def _tint(rng, grey: np.ndarray) -> np.ndarray:
    """A grey image as colour: each channel an affine map of the grey levels."""
    grey = grey.astype(np.float32)
    gains = rng.uniform(0.6, 1.1, size=3)
    offsets = rng.uniform(-20, 30, size=3)
    return np.clip(grey[..., None] * gains + offsets, 0, 255).astype(np.uint8)


def _write(path: str, rgb: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@register_demo('sr')
def make_sr_demo(out_dir: str, seed: int = 0, scale: int = 2, crop: int = 192,
                 crops_per_image: int = 12) -> None:
    """Write the SR demo set (see the module docstring) under ``out_dir``; deterministic."""
    from plugins.tasks.sr.imresize import bicubic_degrade
    rng = np.random.RandomState(seed)
    for name in TEST_IMAGES:
        hr = load_photograph(name)
        hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        _write(osp.join(out_dir, 'test', 'HR', f'{name}.png'), hr)
        _write(osp.join(out_dir, 'test', 'LR_bicubic', f'X{scale}', f'{name}x{scale}.png'),
               bicubic_degrade(hr, scale))
    for name in TRAIN_COLOUR + TRAIN_GREY:
        img = load_photograph(name)
        h, w = img.shape[:2]
        size = min(crop, h - h % scale, w - w % scale)
        for k in range(crops_per_image):
            top, left = rng.randint(0, h - size + 1), rng.randint(0, w - size + 1)
            patch = img[top:top + size, left:left + size]
            patch = _tint(rng, patch) if patch.ndim == 2 else patch
            stem = f'{name}_{k:02d}'
            _write(osp.join(out_dir, 'train', 'HR', f'{stem}.png'), patch)
            _write(osp.join(out_dir, 'train', 'LR_bicubic', f'X{scale}', f'{stem}x{scale}.png'),
                   bicubic_degrade(patch, scale))

