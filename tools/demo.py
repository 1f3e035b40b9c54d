"""Run a demo end to end: train from scratch on generated data, evaluate, draw predictions.

    python tools/demo.py det seg pose     # what `make demo` runs
    python tools/demo.py --list

Each demo trains its demo-twin config with tools/train.py, evaluates the final checkpoint with
tools/test.py (the task's real metric: pycocotools mAP, mIoU, ...), saves drawn predictions under
``work_dirs/demo/<name>/show`` and prints the metric against the demo's target.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# name -> demo twin config, demo data set, metric key, target, what it shows
DEMOS = {
    'det': dict(config='configs/van/retinanet_van-b0_fpn_demo-coco.py', data='coco',
                metric='coco/bbox_mAP', target=0.30,
                about='RetinaNet + VAN-B0 from scratch, COCO-format shapes, pycocotools bbox mAP'),
    'seg': dict(config='configs/van/fpn_van-b0_demo-ade20k.py', data='ade20k', metric='mIoU',
                target=50.0, about='Semantic FPN + VAN-B0 from scratch, ADE20K-layout scenes, mIoU (%)'),
    'pose': dict(config='configs/grouppose/grouppose_r18_demo-coco.py', data='pose',
                 metric='coco/AP', target=0.20,
                 about='Group Pose + ResNet-18 from scratch, COCO-keypoints figures, OKS AP'),
    'yolo': dict(config='configs/mamba_yolo/mamba-yolo-t_pafpn_demo-coco.py', data='coco',
                 metric='coco/bbox_mAP', target=0.30,
                 about='Mamba-YOLO-T from scratch, COCO-format shapes, pycocotools bbox mAP'),
}


def run(cmd, log_path):
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f'{" ".join(cmd)} failed (exit {proc.returncode}); see {log_path}')


RESULTS_JSON = osp.join(ROOT, 'docs', 'demo-results.json')
RESULTS_MD = osp.join(ROOT, 'docs', 'demo-results.md')


def record(name, metrics, train_minutes):
    """Keep the latest result of each demo in docs/ (JSON, and the markdown table made from it)."""
    import platform
    import torch
    results = {}
    if osp.exists(RESULTS_JSON):
        with open(RESULTS_JSON) as f:
            results = json.load(f)
    demo = DEMOS[name]
    results[name] = dict(about=demo['about'], config=demo['config'], metric=demo['metric'],
                         value=metrics[demo['metric']], target=demo['target'],
                         train_minutes=round(train_minutes, 1), metrics=metrics,
                         machine=f'{os.cpu_count()} CPU cores, {platform.machine()}, '
                         f'torch {torch.__version__}, {torch.get_num_threads()} threads',
                         date=time.strftime('%Y-%m-%d'))
    with open(RESULTS_JSON, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    lines = ['# Demo results', '',
             'Written by `tools/demo.py` after each run (from scratch, no pretrained weights, on the',
             'generated data of `tools/make_demo_data.py`). Do not edit by hand.', '',
             '| demo | what | metric | value | target | training time | machine | date |',
             '|---|---|---|---|---|---|---|---|']
    for key, r in sorted(results.items()):
        lines.append(f"| `{key}` | {r['about']} (`{r['config']}`) | {r['metric']} | "
                     f"{r['value']:.3f} | {r['target']} | {r['train_minutes']} min | "
                     f"{r['machine']} | {r['date']} |")
    with open(RESULTS_MD, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def run_demo(name, python):
    demo = DEMOS[name]
    work = osp.join(ROOT, 'work_dirs', 'demo', name)
    os.makedirs(work, exist_ok=True)
    print(f'[demo {name}] {demo["about"]}')
    start = time.time()
    run([python, 'tools/train.py', demo['config'], '--work-dir', work],
        osp.join(work, 'train.log'))
    trained = time.time() - start
    metrics_file = osp.join(work, 'metrics.json')
    run([python, 'tools/test.py', demo['config'], last_checkpoint(work), '--work-dir',
         osp.join(work, 'test'), '--show-dir', osp.join(work, 'show'), '--metrics-out',
         metrics_file], osp.join(work, 'test.log'))
    with open(metrics_file) as f:
        metrics = json.load(f)
    value = float(metrics[demo['metric']])
    verdict = 'reached' if value >= demo['target'] else 'NOT reached'
    print(f'[demo {name}] {demo["metric"]} = {value:.3f} (target {demo["target"]}: {verdict}); '
          f'trained in {trained / 60:.1f} min; all metrics: {metrics}')
    record(name, metrics, trained / 60)
    print(f'[demo {name}] drawn predictions: {osp.join(work, "show")}; logs: {work}')
    return value >= demo['target']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('names', nargs='*', default=['det', 'seg', 'pose'])
    parser.add_argument('--list', action='store_true')
    parser.add_argument('--python', default=sys.executable)
    args = parser.parse_args(argv)
    if args.list:
        for name, demo in DEMOS.items():
            print(f'{name:<12} {demo["about"]} (target {demo["metric"]} >= {demo["target"]})')
        return
    unknown = [n for n in args.names if n not in DEMOS]
    if unknown:
        parser.error(f'unknown demo(s) {unknown}; known: {sorted(DEMOS)}')
    results = [run_demo(name, args.python) for name in args.names]
    sys.exit(0 if all(results) else 1)


if __name__ == '__main__':
    main()
