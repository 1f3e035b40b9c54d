"""Evaluate a checkpoint on a config's test set, optionally saving drawn predictions.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--show-dir DIR] [--out results.pkl] [--cfg-options k=v]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [args]
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a clone

import plugins  # noqa: E402,F401  (registers modules, allow-lists mmengine checkpoints)
from plugins.utils.config_checks import ConfigError  # noqa: E402
from plugins.utils.tools import (DictAction, add_progress, build_runner,  # noqa: E402
                                 load_config, local_rank_env, run_tool, setup_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--metrics-out', help='also write the metrics to this JSON file')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='save images (or PLY / PNG files) with predictions')
    parser.add_argument('--progress', action='store_true',
                        help='print a progress line (batches done, time left) every few seconds')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds between --show images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def enable_visualization(cfg, show: bool, show_dir, wait_time: float) -> None:
    """Turn on the config's visualization hook, whichever library's convention it follows."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ConfigError('--show/--show-dir need default_hooks.visualization in the config')
    show_dir = osp.abspath(show_dir) if show_dir else None
    scope = cfg.get('default_scope', 'mmengine')
    if scope == 'mmpose':
        hook.update(enable=True, show=show, wait_time=wait_time, out_dir=show_dir)
    elif scope == 'mmseg':
        hook.update(draw=True, show=show, wait_time=wait_time, interval=1)
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir
    else:  # mmdet and the toolkit's own tasks: draw + test_out_dir
        hook.update(draw=True)
        if show:
            hook.update(show=True, wait_time=wait_time)
        if show_dir:
            hook['test_out_dir'] = show_dir


def add_dump(cfg, out: str) -> None:
    if not out.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--out must be a .pkl or .pickle file, got {out!r}')
    dump = dict(type='DumpDetResults' if cfg.get('default_scope') == 'mmdet' else
                'DumpResults', out_file_path=out)
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, (list, tuple)) else
                          [evaluator]) + [dump]


def main(argv=None):
    args = parse_args(argv)
    local_rank_env()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from, cfg.resume = args.checkpoint, False
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.out:
        add_dump(cfg, args.out)
    if args.progress:
        add_progress(cfg)
    setup_distributed(cfg)
    runner = build_runner(cfg, data_splits=('test', ))
    metrics = runner.test()
    if args.metrics_out and runner.rank == 0:
        with open(args.metrics_out, 'w') as f:
            json.dump({k: float(v) if isinstance(v, (int, float)) else str(v)
                       for k, v in metrics.items()}, f, indent=1)


if __name__ == '__main__':
    run_tool(main)
