"""Saving test predictions of point clouds (``tools/test.py --show-dir``): coloured PLY files for
a 3-D viewer, and PNG top views coloured by class to look at without one."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook

from plugins.registry import HOOKS


def write_ply(path: str, xyz: np.ndarray, rgb: np.ndarray, labels: Optional[np.ndarray] = None):
    """Binary little-endian PLY with float xyz, uchar rgb and (optionally) an int label."""
    fields = [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('red', 'u1'), ('green', 'u1'),
              ('blue', 'u1')] + ([('label', '<i4')] if labels is not None else [])
    data = np.empty(len(xyz), dtype=fields)
    data['x'], data['y'], data['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    data['red'], data['green'], data['blue'] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    if labels is not None:
        data['label'] = labels
    ply_types = {'<f4': 'float', 'u1': 'uchar', '<i4': 'int'}
    header = ['ply', 'format binary_little_endian 1.0', f'element vertex {len(xyz)}']
    header += [f'property {ply_types[t]} {n}' for n, t in fields] + ['end_header']
    with open(path, 'wb') as f:
        f.write(('\n'.join(header) + '\n').encode('ascii'))
        f.write(data.tobytes())


def draw_top_view(xyz: np.ndarray, rgb: np.ndarray, classes: Sequence[str] = (),
                  palette: Optional[np.ndarray] = None, size: int = 512) -> np.ndarray:
    """A top view (looking down the z axis) of coloured points, as an H x W x 3 RGB image.

    Each pixel shows its highest point (box tops hide the floor under them). The pixel is three
    times the mean point spacing, so surfaces show with few holes, and the image is scaled to
    ``size`` pixels on its longer side. ``classes`` and ``palette`` add a legend below.
    """
    xy = xyz[:, :2].astype(np.float64)
    low, extent = xy.min(0), np.maximum(xy.max(0) - xy.min(0), 1e-6)
    pixel = 3 * np.sqrt(extent[0] * extent[1] / max(len(xy), 1))
    cols, rows = (np.ceil(extent / pixel).astype(int) + 1)
    col = ((xy[:, 0] - low[0]) / pixel).astype(int)
    row = rows - 1 - ((xy[:, 1] - low[1]) / pixel).astype(int)  # y up
    flat = row * cols + col
    order = np.lexsort((xyz[:, 2], flat))  # by pixel, then height: each group's last is the top
    top = order[np.r_[flat[order][1:] != flat[order][:-1], True]]
    image = np.full((rows * cols, 3), 255, np.uint8)
    image[flat[top]] = rgb[top]
    scale = size / max(rows, cols)
    image = cv2.resize(image.reshape(rows, cols, 3), (max(int(cols * scale), 1),
                       max(int(rows * scale), 1)), interpolation=cv2.INTER_NEAREST)
    if classes and palette is not None:
        image = np.concatenate([image, _legend(image.shape[1], classes, palette)])
    return image


def _legend(width: int, classes: Sequence[str], palette: np.ndarray) -> np.ndarray:
    """Colour swatches and class names, in rows of the image's width."""
    line, x, rows = 22, 6, [[]]
    for i, name in enumerate(classes):
        w = 20 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 12
        if x + w > width and rows[-1]:
            rows.append([])
            x = 6
        rows[-1].append((x, i, name))
        x += w
    legend = np.full((line * len(rows) + 4, width, 3), 255, np.uint8)
    for r, items in enumerate(rows):
        y = r * line + 4
        for x, i, name in items:
            legend[y + 3:y + 17, x:x + 14] = palette[i]
            cv2.putText(legend, name, (x + 18, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return legend


def write_top_view(path: str, xyz: np.ndarray, rgb: np.ndarray, classes: Sequence[str] = (),
                   palette: Optional[np.ndarray] = None) -> None:
    """:func:`draw_top_view` written as a PNG file."""
    image = draw_top_view(xyz, rgb, classes, palette)
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@HOOKS.register_module()
class PointCloudVisualizationHook(Hook):
    """Write each test cloud's prediction to ``test_out_dir/<name>_pred.ply`` (and ``_gt.ply``),
    and its top view coloured by class to ``<name>_pred.png`` (and ``_gt.png``).

    mmdet's convention, driven by ``tools/test.py --show-dir D``: ``draw`` turns it on,
    ``test_out_dir`` says where (relative paths go under the run's ``work_dir/timestamp``).
    Colours come from the data set's ``palette`` (or a fixed one); the PLY also stores the label.
    """
    priority = 'NORMAL'

    def __init__(self, draw: bool = False, test_out_dir: Optional[str] = None,
                 with_gt: bool = True, show: bool = False, wait_time: float = 0.) -> None:
        self.draw, self.test_out_dir, self.with_gt = draw, test_out_dir, with_gt
        self.show, self.wait_time = show, wait_time  # accepted for --show; files are written

    def _palette(self, runner, num: int) -> np.ndarray:
        meta = getattr(runner.test_dataloader.dataset, 'metainfo', {}) or {}
        palette = meta.get('palette')
        if palette is None or len(palette) < num:
            palette = np.random.RandomState(0).randint(0, 256, (max(num, 1), 3))
        return np.asarray(palette, dtype=np.uint8)

    def _classes(self, runner) -> Sequence[str]:
        meta = getattr(runner.test_dataloader.dataset, 'metainfo', {}) or {}
        return tuple(meta.get('classes') or ())

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or not outputs:
            return
        out_dir = self.test_out_dir or 'pointcloud_results'
        if not osp.isabs(out_dir):
            out_dir = osp.join(runner.work_dir, runner.timestamp, out_dir)
        os.makedirs(out_dir, exist_ok=True)
        for i, sample in enumerate(outputs):
            pred = sample.pred_labels.numpy()
            xyz = (sample.eval_coord if 'eval_coord' in sample else
                   data_batch['inputs'][i]['coord']).numpy()
            ignore = 255
            gt = sample.gt_labels.numpy() if 'gt_labels' in sample else None
            num = int(max(pred.max(initial=0), 0 if gt is None else
                          gt[gt != ignore].max(initial=0))) + 1
            classes = self._classes(runner)
            palette = self._palette(runner, max(num, len(classes)))
            name = sample.metainfo.get('name', f'{batch_idx:06d}_{i}')
            write_ply(osp.join(out_dir, f'{name}_pred.ply'), xyz, palette[pred], pred)
            write_top_view(osp.join(out_dir, f'{name}_pred.png'), xyz, palette[pred], classes,
                           palette)
            if self.with_gt and gt is not None and len(gt) == len(xyz):
                colors = np.where((gt == ignore)[:, None], 0, palette[np.minimum(gt, num - 1)])
                colors = colors.astype(np.uint8)
                write_ply(osp.join(out_dir, f'{name}_gt.ply'), xyz, colors, gt)
                write_top_view(osp.join(out_dir, f'{name}_gt.png'), xyz, colors, classes, palette)
