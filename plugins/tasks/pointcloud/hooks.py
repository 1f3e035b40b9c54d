"""Saving test predictions of point clouds as coloured PLY files (``tools/test.py --show-dir``)."""
import os
import os.path as osp
from typing import Optional, Sequence

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


@HOOKS.register_module()
class PointCloudVisualizationHook(Hook):
    """Write each test cloud's prediction to ``test_out_dir/<name>_pred.ply`` (and ``_gt.ply``).

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
            palette = self._palette(runner, num)
            name = sample.metainfo.get('name', f'{batch_idx:06d}_{i}')
            write_ply(osp.join(out_dir, f'{name}_pred.ply'), xyz, palette[pred], pred)
            if self.with_gt and gt is not None and len(gt) == len(xyz):
                colors = np.where((gt == ignore)[:, None], 0, palette[np.minimum(gt, num - 1)])
                write_ply(osp.join(out_dir, f'{name}_gt.ply'), xyz, colors.astype(np.uint8), gt)
