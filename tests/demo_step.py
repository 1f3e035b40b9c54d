"""One training iteration of a demo config in the test process (an mmengine Runner built here).

The demo configs read their data under ``data/demo/<task>/``; :func:`train_demo_step` points every
such path at the test session's small generated sets, trains ``iters`` iterations through the
config's own loop, hooks and optimizer (no validation, no checkpoint written) and returns the
Runner, so a test can look at the model and at the logged losses.
"""
import contextlib
import itertools
import os.path as osp
from unittest import mock

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_PREFIX = 'data/demo/'
_RUNS = itertools.count()


def ensure_demo_set(root, task: str) -> str:
    """Generate the small demo set of ``task`` under ``root/task`` once; returns its folder."""
    folder = osp.join(str(root), task)
    if osp.isdir(folder):
        return folder
    if task == 'coco':
        from plugins.datasets.detection_demo import make_coco_demo
        make_coco_demo(folder, seed=0, num_train=8, num_val=4)
    elif task == 'ade20k':
        from plugins.datasets.segmentation_demo import make_ade20k_demo
        make_ade20k_demo(folder, seed=0, num_train=8, num_val=4)
    elif task == 'pose':
        from plugins.datasets.pose_demo import make_pose_demo
        make_pose_demo(folder, seed=0, num_train=8, num_val=4)
    elif task == 'sr':
        from plugins.datasets.sr_demo import make_sr_demo
        make_sr_demo(folder, seed=0, crop=64, crops_per_image=1)
    elif task == 'pointcloud':
        from plugins.datasets.pointcloud_demo import make_pointcloud_demo
        make_pointcloud_demo(folder, seed=0, rooms_per_area=1, areas=(1, 5))
    else:
        raise KeyError(f'no demo set {task!r}')
    return folder


def retarget(node, root):
    """Every string under ``data/demo/`` in a config, pointed at ``root`` (the sets made on
    demand); returns the new node."""
    if isinstance(node, dict):
        return type(node)({k: retarget(v, root) for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(retarget(v, root) for v in node)
    if isinstance(node, str) and DEMO_PREFIX in node:
        head, rest = node.split(DEMO_PREFIX, 1)
        task = rest.split('/', 1)[0]
        ensure_demo_set(root, task)
        return head + osp.join(str(root), '') + rest
    return node


def demo_step_config(config: str, demo_root, work_dir, cfg_options=None, iters: int = 1,
                     batch_size: int = None) -> Config:
    """The demo config set up for ``iters`` training iterations on the test sets: batches of 2
    (1 for detectors; BatchNorm in segmentation heads needs more than one sample), 64 sampled
    RoIs per image in two-stage detectors (the config's 512 cost seconds and test nothing more),
    no validation, no checkpoint."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg = Config(retarget(cfg.to_dict(), demo_root), filename=cfg.filename)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'demo_step_{next(_RUNS)}'
    cfg.launcher = 'none'
    detector = cfg.get('default_scope') == 'mmdet'
    batch_size = batch_size or (1 if detector else 2)
    cfg.train_dataloader.batch_size = batch_size
    rcnn = (cfg.model.get('train_cfg') or {}).get('rcnn') if detector else None
    if rcnn and 'sampler' in rcnn:
        rcnn.sampler.num = 64
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    loop = cfg.train_cfg.get('type', 'EpochBasedTrainLoop')
    if 'max_iters' in cfg.train_cfg or 'IterBased' in loop:
        cfg.train_cfg.max_iters = iters
    else:  # one epoch over the first iters * batch_size samples
        cfg.train_cfg.max_epochs = 1
        cfg.train_dataloader.dataset.indices = iters * batch_size
    cfg.train_cfg.val_interval = 10 ** 9
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.pop('load_from', None)
    cfg.resume = False
    return cfg


def train_demo_step(config: str, demo_root, work_dir, cfg_options=None, iters: int = 1,
                    batch_size: int = 2):
    """Train ``iters`` iterations of the demo ``config`` in this process; returns the Runner.

    ``runner.message_hub.get_scalar('train/loss').current()`` is the last logged total loss.
    """
    from plugins.utils.tools import build_runner
    cfg = demo_step_config(config, demo_root, work_dir, cfg_options, iters, batch_size)
    with unformatted_config_text():
        runner = build_runner(cfg)
        runner.train()
    return runner


@contextlib.contextmanager
def unformatted_config_text():
    """The Runner logs and dumps its config through yapf, which takes seconds per config on this
    machine; tests read neither, so the text is left as mmengine writes it before formatting."""
    with mock.patch('mmengine.config.config.FormatCode', lambda text, **kw: (text, False)):
        yield
