"""Saving the SR outputs of a test run as PNG files (``tools/test.py --show-dir``)."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook

from plugins.registry import HOOKS


@HOOKS.register_module()
class SRVisualizationHook(Hook):
    """Write each test prediction to ``test_out_dir/<data set>/<image name>.png``.

    Follows mmdet's ``DetVisualizationHook`` convention, which ``tools/test.py --show-dir D``
    drives: ``draw`` turns saving on, ``test_out_dir`` (relative paths are taken inside the run's
    ``work_dir/timestamp``) says where.
    """
    priority = 'NORMAL'

    def __init__(self, draw: bool = False, test_out_dir: Optional[str] = None,
                 interval: int = 1, show: bool = False, wait_time: float = 0.) -> None:
        self.draw = draw
        self.test_out_dir = test_out_dir
        self.interval = interval
        self.show = show  # accepted for the tools' --show; images are only saved
        self.wait_time = wait_time

    def _out_dir(self, runner) -> str:
        out = self.test_out_dir or 'sr_results'
        if not osp.isabs(out):
            out = osp.join(runner.work_dir, runner.timestamp, out)
        return out

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or outputs is None:
            return
        out_dir = self._out_dir(runner)
        for i, sample in enumerate(outputs):
            img = sample.pred_img
            img = img.numpy() if hasattr(img, 'numpy') else np.asarray(img)
            img = np.clip(np.round(img), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            name = sample.get('img_name', f'{batch_idx:06d}_{i}')
            folder = osp.join(out_dir, sample.get('dataset_name', ''))
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(osp.join(folder, f'{name}.png'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
