"""One train step and one test step of an SR config through tools/train.py and tools/test.py."""
import glob
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def write_images(folder, n, size, seed):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        img = cv2.GaussianBlur(rng.randint(0, 256, size + (3,)).astype(np.uint8), (5, 5), 2)
        cv2.imwrite(osp.join(folder, f'{i:03d}.png'), img)


@pytest.mark.slow
def test_train_then_test_catanet_demo_config_through_the_tools(tmp_path):
    data = tmp_path / 'sr'
    write_images(str(data / 'train' / 'HR'), 4, (64, 64), 0)  # HR only: LR made on the fly
    write_images(str(data / 'test' / 'HR'), 2, (36, 28), 1)
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    common = ['--cfg-options', f'train_dataloader.dataset.data_root={data}/train',
              'train_dataloader.dataset.lq_folder=None', 'train_dataloader.batch_size=2',
              f'val_dataloader.dataset.data_root={data}/test',
              f'test_dataloader.dataset.data_root={data}/test']
    subprocess.run([sys.executable, 'tools/train.py', 'configs/sr/catanet_x2_demo.py',
                    '--work-dir', str(work), *common, 'train_cfg.max_iters=1',
                    'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1'],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    ckpt = str(work / 'iter_1.pth')
    assert osp.exists(ckpt)
    show = tmp_path / 'show'
    result = subprocess.run([sys.executable, 'tools/test.py', 'configs/sr/catanet_x2_demo.py',
                             ckpt, '--work-dir', str(work), '--show-dir', str(show), *common],
                            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert 'sr/PSNR:' in log and 'sr/SSIM:' in log and 'sr/PSNR_bicubic:' in log
    assert len(glob.glob(str(show / '*' / '*.png'))) == 2
