"""Run the demos end to end: train from scratch on generated data, evaluate, draw predictions.

    python tools/demo.py det seg pose           # what `make demo` runs
    python tools/demo.py det seg pose sr pcd    # `make demo-all`
    python tools/demo.py --list
    python tools/demo.py --record               # copy the latest results into docs/demo-results.*

Each demo generates its data set (tools/make_demo_data.py, seconds, deterministic), trains its
demo-twin config with tools/train.py (seed 0), evaluates the final checkpoint with tools/test.py
(the task's real metric) and saves drawn predictions under ``work_dirs/demo/<name>/show``. The
console shows a progress line every few seconds (the full logs go to
``work_dirs/demo/<name>/{train,test}.log``) and, at the end, one table of every demo run: metric,
target, reached or not, times, where the drawings are. Results are kept in
``work_dirs/demo/results.json``; the committed ``docs/demo-results.*`` change only with --record.
"""
import argparse
import json
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WORK = osp.join('work_dirs', 'demo')
RESULTS_JSON = osp.join(WORK, 'results.json')
RECORD_JSON = osp.join('docs', 'demo-results.json')
RECORD_MD = osp.join('docs', 'demo-results.md')
PROGRESS = '[progress]'  # what plugins.utils.progress.ProgressHook starts its lines with

# name -> demo twin config, demo data set, metric (minus `baseline` when given), target, about
DEMOS = {
    'det': dict(config='configs/van/retinanet_van-b0_fpn_demo-coco.py', data='coco',
                metric='coco/bbox_mAP', target=0.30,
                about='RetinaNet + VAN-B0 from scratch, COCO-format shapes, pycocotools bbox mAP'),
    'seg': dict(config='configs/van/fpn_van-b0_demo-ade20k.py', data='ade20k', metric='mIoU',
                target=50.0, about='Semantic FPN + VAN-B0 from scratch, ADE20K-layout scenes '
                'cut from real photographs, mIoU (%)'),
    'pose': dict(config='configs/grouppose/grouppose_r18_demo-coco.py', data='pose',
                 metric='coco/AP', target=0.20,
                 about='Group Pose + ResNet-18 from scratch, COCO-keypoints figures, OKS AP'),
    'sr': dict(config='configs/sr/catanet_x2_demo.py', data='sr', metric='sr/PSNR',
               baseline='sr/PSNR_bicubic', target=0.5,
               about='CATANet x2 from scratch on scikit-image photographs, PSNR gain over '
               'bicubic (dB, Y channel)'),
    'pcd': dict(config='configs/condaformer/condaformer_demo-semseg.py', data='pointcloud',
                metric='pcd/mIoU', target=0.50,
                about='ConDaFormer from scratch on generated rooms (S3DIS layout), point mIoU'),
    'yolo': dict(config='configs/mamba_yolo/mamba-yolo-t_pafpn_demo-coco.py', data='coco',
                 metric='coco/bbox_mAP', target=0.30,
                 about='Mamba-YOLO-T from scratch, COCO-format shapes, pycocotools bbox mAP'),
}
# every demo: a fixed seed, and no evaluation during training (tools/test.py evaluates once)
TRAIN_OPTIONS = ['randomness.seed=0', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


def metric_name(demo: dict) -> str:
    return f"{demo['metric']} - {demo['baseline']}" if 'baseline' in demo else demo['metric']


def score(demo: dict, metrics: dict) -> float:
    value = float(metrics[demo['metric']])
    return value - float(metrics[demo['baseline']]) if 'baseline' in demo else value


def run(name: str, cmd, log_path: str) -> bool:
    """Run ``cmd``; every line goes to ``log_path``, progress lines also to the console."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        for line in proc.stdout:
            log.write(line)
            if line.startswith(PROGRESS):
                print(f'[demo {name}] {line[len(PROGRESS):].strip()}', flush=True)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.readlines()[-15:]
        print(f'[demo {name}] {osp.basename(cmd[1])} failed (exit {proc.returncode}); the end of '
              f'{log_path}:\n' + ''.join(tail), file=sys.stderr, flush=True)
    return proc.returncode == 0


def run_demo(name: str, python: str) -> dict:
    """Train, test and score one demo; returns its result (``reached`` False on any failure)."""
    demo = DEMOS[name]
    work = osp.join(WORK, name)
    shutil.rmtree(osp.join(ROOT, work), ignore_errors=True)
    os.makedirs(osp.join(ROOT, work))
    result = dict(about=demo['about'], config=demo['config'], metric=metric_name(demo),
                  target=demo['target'], value=None, reached=False, show_dir=osp.join(work, 'show'),
                  train_minutes=None, test_minutes=None, date=time.strftime('%Y-%m-%d'),
                  machine=machine())
    print(f'[demo {name}] {demo["about"]}; logs in {work}', flush=True)
    start = time.time()
    trained = run(name, [python, 'tools/train.py', demo['config'], '--work-dir', work,
                         '--progress', '--cfg-options', *TRAIN_OPTIONS],
                  osp.join(ROOT, work, 'train.log'))
    result['train_minutes'] = round((time.time() - start) / 60, 1)
    result['machine'] = machine()  # the load at the end of training
    if not trained:
        return result
    with open(osp.join(ROOT, work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    metrics_file = osp.join(work, 'metrics.json')
    start = time.time()
    tested = run(name, [python, 'tools/test.py', demo['config'], checkpoint, '--work-dir',
                        osp.join(work, 'test'), '--show-dir', result['show_dir'], '--progress',
                        '--metrics-out', metrics_file], osp.join(ROOT, work, 'test.log'))
    result['test_minutes'] = round((time.time() - start) / 60, 1)
    if not tested:
        return result
    with open(osp.join(ROOT, metrics_file)) as f:
        result['metrics'] = json.load(f)
    result['value'] = score(demo, result['metrics'])
    result['reached'] = result['value'] >= demo['target']
    print(f'[demo {name}] {result["metric"]} = {result["value"]:.3f} (target {demo["target"]}: '
          f'{"reached" if result["reached"] else "NOT reached"})', flush=True)
    return result


def machine() -> str:
    """The machine a demo ran on, with its load (the machines are often shared)."""
    try:
        torch = metadata.version('torch')
    except metadata.PackageNotFoundError:
        torch = '?'
    threads = os.environ.get('OMP_NUM_THREADS')
    return (f'{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch}, '
            f'{f"OMP_NUM_THREADS={threads}" if threads else "default threads"}, '
            f'load average {os.getloadavg()[0]:.1f}')


def summary_table(results: dict) -> str:
    """The end-of-run table: one row per demo."""
    header = ('demo', 'metric', 'value', 'target', 'reached', 'train', 'test', 'predictions')
    rows = [header]
    for name, r in results.items():
        value = '-' if r['value'] is None else f"{r['value']:.3f}"
        minutes = ['-' if m is None else f'{m} min'
                   for m in (r['train_minutes'], r['test_minutes'])]
        reached = 'yes' if r['reached'] else ('no' if r['value'] is not None else 'failed')
        rows.append((name, r['metric'], value, str(r['target']), reached, *minutes,
                     r['show_dir']))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def load_json(path: str) -> dict:
    full = osp.join(ROOT, path)
    if not osp.exists(full):
        return {}
    with open(full) as f:
        return json.load(f)


def save_json(path: str, data: dict) -> None:
    with open(osp.join(ROOT, path), 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')


def record() -> None:
    """Copy the results of the latest runs (work_dirs/demo/results.json) into docs/."""
    latest = load_json(RESULTS_JSON)
    if not latest:
        sys.exit(f'nothing to record: {RESULTS_JSON} does not exist; run tools/demo.py first')
    recorded = load_json(RECORD_JSON)
    recorded.update({name: r for name, r in latest.items() if r['value'] is not None})
    save_json(RECORD_JSON, recorded)
    lines = ['# Demo results', '',
             'Recorded with `python tools/demo.py --record` from the latest runs of',
             '`tools/demo.py` (from scratch, no pretrained weights, seed 0, on the generated data',
             'of `tools/make_demo_data.py`). Do not edit by hand.', '',
             '| demo | what | metric | value | target | reached | training time | machine | date |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, r in sorted(recorded.items()):
        lines.append(f"| `{name}` | {r['about']} (`{r['config']}`) | {r['metric']} | "
                     f"{r['value']:.3f} | {r['target']} | {'yes' if r['reached'] else 'no'} | "
                     f"{r['train_minutes']} min | {r['machine']} | {r['date']} |")
    with open(osp.join(ROOT, RECORD_MD), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'recorded {sorted(latest)} in {RECORD_MD} and {RECORD_JSON}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('names', nargs='*', help=f'demos to run (default: det seg pose; all: '
                        f'{" ".join(DEMOS)})')
    parser.add_argument('--list', action='store_true', help='list the demos and their targets')
    parser.add_argument('--record', action='store_true',
                        help='write the latest results (work_dirs/demo/results.json) into '
                        'docs/demo-results.{json,md}; with names, after running them')
    parser.add_argument('--python', default=sys.executable)
    args = parser.parse_args(argv)
    if args.list:
        for name, demo in DEMOS.items():
            print(f'{name:<6} {demo["about"]} (target {metric_name(demo)} >= {demo["target"]})')
        return
    names = args.names or ([] if args.record else ['det', 'seg', 'pose'])
    unknown = [n for n in names if n not in DEMOS]
    if unknown:
        parser.error(f'unknown demo(s) {unknown}; known: {list(DEMOS)}')
    if names:
        os.makedirs(osp.join(ROOT, WORK), exist_ok=True)
        tasks = sorted({DEMOS[n]['data'] for n in names})
        subprocess.run([args.python, 'tools/make_demo_data.py', '--out', 'data/demo',
                        '--tasks', *tasks], cwd=ROOT, check=True)
    results = {}
    for name in names:
        results[name] = run_demo(name, args.python)
        save_json(RESULTS_JSON, dict(load_json(RESULTS_JSON), **{name: results[name]}))
    if results:
        print('\n' + summary_table(results) + f'\n\nresults: {RESULTS_JSON} (logs and drawn '
              f'predictions under {WORK}/<demo>); record them in docs/ with '
              f'`python tools/demo.py --record`')
    if args.record:
        record()
    sys.exit(0 if all(r['reached'] for r in results.values()) else 1)


if __name__ == '__main__':
    main()
