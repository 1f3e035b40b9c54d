"""Train a model from a config: detection, segmentation, pose, point cloud or super-resolution.

The config's ``default_scope`` picks the library (mmdet, mmseg, mmpose; the toolkit's own tasks use
mmengine's root scope). Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--progress]
                             [--cfg-options k=v]
    bash tools/dist_train.sh CONFIG NUM_PROCS [args]

Every run writes checkpoints atomically, keeps the random generators' states in them and stops
at a NaN or infinite loss (plugins/utils/fault_tolerance.py); ``--resume`` without a path takes
the last complete checkpoint of the work dir and says which.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a clone

import plugins  # noqa: E402,F401  (registers modules, allow-lists mmengine checkpoints)
import torch.distributed as dist  # noqa: E402
from plugins.utils.fault_tolerance import (add_training_safeguards,  # noqa: E402
                                           find_resumable_checkpoint)
from plugins.utils.tools import (DictAction, add_progress, build_runner,  # noqa: E402
                                 enable_amp, load_config, local_rank_env, run_tool,
                                 setup_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--amp', action='store_true', help='mixed precision (bf16 on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the real batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the last complete checkpoint of the '
                        'work dir')
    parser.add_argument('--progress', action='store_true',
                        help='print a progress line (iteration, loss, time left) every few seconds')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def resume_from_work_dir(work_dir: str):
    """``(resume, load_from)`` for ``--resume`` without a path, said on the console."""
    path, notes = find_resumable_checkpoint(work_dir)
    if int(os.environ.get('RANK', 0)) == 0:
        for note in notes:
            print(f'resume: passed over {note}')
        print(f'resume: continuing from {path}' if path else
              f'resume: no checkpoint in {work_dir} yet, training from the start')
    return path is not None, path


def main(argv=None):
    args = parse_args(argv)
    local_rank_env()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp or cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr', {}), enable=True)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = resume_from_work_dir(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    add_training_safeguards(cfg)
    if args.progress:
        add_progress(cfg)
    setup_distributed(cfg)
    runner = build_runner(cfg, data_splits=('train', 'val'))
    runner.train()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()  # gloo's threads end before the interpreter does


if __name__ == '__main__':
    run_tool(main)
