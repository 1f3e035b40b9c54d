"""tools/demo.py without training (the demo list, scores, the summary table, --record), the
progress lines it shows, and the harder segmentation demo set."""
import importlib.util
import json
import os.path as osp
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop

from plugins.utils.progress import PREFIX, ProgressHook, format_duration

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_demo_tool():
    spec = importlib.util.spec_from_file_location('demo', osp.join(ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo_tool()


def test_every_demo_has_a_config_and_a_data_generator():
    from plugins.datasets.registry import DEMO_GENERATORS
    assert list(demo.DEMOS) == ['det', 'seg', 'pose', 'sr', 'pcd', 'yolo']
    for spec in demo.DEMOS.values():
        assert osp.isfile(osp.join(ROOT, spec['config'])) and spec['data'] in DEMO_GENERATORS


def test_the_sr_demo_scores_its_gain_over_bicubic():
    sr = demo.DEMOS['sr']
    assert demo.score(sr, {'sr/PSNR': 33.4, 'sr/PSNR_bicubic': 32.5}) == pytest.approx(0.9)
    assert demo.metric_name(sr) == 'sr/PSNR - sr/PSNR_bicubic'


def result(value, reached):
    return dict(about='a demo', config='configs/x.py', metric='mIoU', target=0.5, value=value,
                reached=reached, show_dir='work_dirs/demo/x/show', train_minutes=1.5,
                test_minutes=None if value is None else 0.2, machine='m', date='d')


def test_the_summary_has_one_row_per_demo_with_its_verdict():
    table = demo.summary_table({'seg': result(0.61, True), 'pcd': result(0.42, False),
                                'det': result(None, False)})
    rows = table.splitlines()
    assert rows[0].split() == ['demo', 'metric', 'value', 'target', 'reached', 'train', 'test',
                               'predictions']
    assert rows[2].split()[:5] == ['seg', 'mIoU', '0.610', '0.5', 'yes']
    assert rows[3].split()[4] == 'no' and rows[4].split()[4] == 'failed'
    assert rows[2].endswith('work_dirs/demo/x/show')


def test_record_copies_the_latest_results_into_the_docs(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, 'ROOT', str(tmp_path))
    (tmp_path / 'work_dirs' / 'demo').mkdir(parents=True)
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'demo-results.json').write_text(json.dumps({'det': result(0.4, True)}))
    (tmp_path / demo.RESULTS_JSON).write_text(json.dumps({'seg': result(0.61, True),
                                                          'pcd': result(None, False)}))
    demo.record()
    recorded = json.loads((tmp_path / 'docs' / 'demo-results.json').read_text())
    assert sorted(recorded) == ['det', 'seg']  # a failed run is not recorded
    table = (tmp_path / 'docs' / 'demo-results.md').read_text()
    assert '| `seg` | a demo (`configs/x.py`) | mIoU | 0.610 | 0.5 | yes | 1.5 min |' in table


def test_a_demo_run_shows_progress_lines_and_logs_everything(tmp_path, capsys):
    log = tmp_path / 'train.log'
    script = f'print("{PREFIX} train 1/2 loss 0.5"); print("a log line")'
    assert demo.run('seg', [sys.executable, '-c', script], str(log))
    assert capsys.readouterr().out == '[demo seg] train 1/2 loss 0.5\n'
    assert log.read_text() == f'{PREFIX} train 1/2 loss 0.5\na log line\n'


def test_a_failed_run_shows_the_end_of_its_log(tmp_path, capsys):
    script = 'import sys; print("the cause"); sys.exit(3)'
    assert not demo.run('seg', [sys.executable, '-c', script], str(tmp_path / 'x.log'))
    assert 'failed (exit 3)' in capsys.readouterr().err


# ---- progress lines ---------------------------------------------------------------------------
def test_durations_read_as_clock_time():
    assert [format_duration(s) for s in (0, 75, 3725)] == ['0:00', '1:15', '1:02:05']


def runner_at(iteration, max_iters, loop=None, **extra):
    return SimpleNamespace(rank=0, iter=iteration, max_iters=max_iters, epoch=0,
                           train_loop=loop or object(), **extra)


def test_progress_shows_the_first_and_last_iteration_with_the_mean_loss_between(capsys):
    hook = ProgressHook(interval_s=3600)
    runner = runner_at(0, 5)
    hook.before_train(runner)
    for i in range(5):
        runner.iter = i
        hook.after_train_iter(runner, i, outputs={'loss': torch.tensor(1.0 + i)})
    runner.iter = 5
    hook.after_train(runner)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('[progress] train 1/5 loss 1 | ') and lines[0].endswith(' left')
    assert lines[1].startswith('[progress] train 5/5 loss 3.5 | ')  # iterations 2 to 5
    assert lines[2].startswith('[progress] train done: 5 iterations in ')
    assert len(lines) == 3


def test_progress_of_an_epoch_based_loop_names_the_epoch(capsys):
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    runner = runner_at(11, 40, loop, max_epochs=4)
    runner.epoch = 1
    hook = ProgressHook()
    hook.before_train(runner)
    hook.after_train_iter(runner, 11, outputs={'loss': torch.tensor(0.25)})
    assert capsys.readouterr().out.startswith('[progress] train 12/40 (epoch 2/4) loss 0.25 |')


def test_progress_of_a_test_counts_batches(capsys):
    runner = SimpleNamespace(rank=0, test_dataloader=[0] * 3)
    hook = ProgressHook(interval_s=0)
    hook.before_test_epoch(runner)
    for i in range(3):
        hook.after_test_iter(runner, i)
    hook.after_test_epoch(runner)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(' |')[0] for line in lines[:3]] == [
        '[progress] test 1/3', '[progress] test 2/3', '[progress] test 3/3']
    assert lines[3].startswith('[progress] test done: 3 batches in ')


def test_only_the_main_process_prints_progress(capsys):
    hook = ProgressHook()
    runner = runner_at(0, 2)
    runner.rank = 1
    hook.before_train(runner)
    hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(1.0)})
    assert capsys.readouterr().out == ''


# ---- the segmentation demo set ------------------------------------------------------------------
def test_every_texture_photograph_feeds_two_classes_or_more():
    from plugins.datasets.segmentation_demo import SCENE_CLASSES, TEXTURES
    uses = {}
    for kind in SCENE_CLASSES:
        for photo in TEXTURES[kind]:
            uses.setdefault(photo, []).append(kind)
    assert {photo: kinds for photo, kinds in uses.items() if len(kinds) < 2} == {}


def test_scenes_hold_every_class_thin_structures_and_clutter():
    from plugins.datasets.segmentation_demo import ADE_IDS, OTHER, make_scene
    rng = np.random.RandomState(0)
    labels = [make_scene(rng, 128, 128)[1] for _ in range(12)]
    seen = set(np.unique(np.stack(labels)))
    assert seen == set(ADE_IDS.values()) | {OTHER}
    tree = np.stack(labels) == ADE_IDS['tree']
    # a thin structure: tree pixels whose left and right neighbours are not tree
    thin = tree[:, :, 1:-1] & ~tree[:, :, :-2] & ~tree[:, :, 2:]
    assert thin.sum() > 20


def test_the_segmentation_set_is_deterministic_and_in_the_ade20k_layout(tmp_path):
    import cv2
    from plugins.datasets.segmentation_demo import make_ade20k_demo
    for name in ('a', 'b'):
        make_ade20k_demo(str(tmp_path / name), seed=3, num_train=2, num_val=1, size=(64, 96))
    image = tmp_path / 'a' / 'images' / 'training' / 'ADE_train_00000001.jpg'
    label = tmp_path / 'a' / 'annotations' / 'validation' / 'ADE_valid_00000000.png'
    assert cv2.imread(str(image)).shape == (64, 96, 3)
    assert cv2.imread(str(label), cv2.IMREAD_UNCHANGED).shape == (64, 96)
    for path in (image, label):
        other = tmp_path / 'b' / path.relative_to(tmp_path / 'a')
        assert path.read_bytes() == other.read_bytes()
