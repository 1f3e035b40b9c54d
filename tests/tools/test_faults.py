"""Faults survived, nothing lost: kills, interrupted checkpoint writes, full disks, NaN losses,
and 2-process training, with a tiny Semantic FPN on a LayerNorm backbone (a few iterations).

The subprocess runs of tools/train.py here are deliberate (a process must really die); each
is a few seconds. The NaN test builds its runner in-process.
"""
import json
import os
import os.path as osp
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from plugins.utils.checkpoint import CheckpointError
from plugins.utils.fault_tolerance import (PARTIAL_SUFFIX, add_training_safeguards,
                                           checkpoint_is_complete, find_resumable_checkpoint)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PY = sys.executable

# Semantic FPN + a tiny DaViT (LayerNorm only: no batch statistics, so one process and two agree)
TINY = """
_base_ = {base!r}
data_root = {data!r}
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(_delete_=True, type='DaViT', drop_path_rate={drop_path},
                  arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                            num_heads=[1, 2, 4, 8])),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16, norm_cfg=None,
                     dropout_ratio=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    {flip}
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(dataset=dict(data_root=data_root))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9))
param_scheduler = []
train_cfg = dict(max_iters=8, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), logger=dict(interval=1))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
"""


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from plugins.datasets.segmentation_demo import make_ade20k_demo
    root = tmp_path_factory.mktemp('faults') / 'ade20k'
    make_ade20k_demo(str(root), seed=0, num_train=8, num_val=2, size=(64, 64))
    return root


def tiny_config(path, data, augment=True):
    """The tiny config; ``augment``: random flips and stochastic depth (both draw random
    numbers)."""
    path.write_text(TINY.format(
        base=osp.join(ROOT, 'configs/van/fpn_van-b0_demo-ade20k.py'), data=str(data),
        drop_path=0.2 if augment else 0.0,
        flip="dict(type='RandomFlip', prob=0.5)," if augment else ''))
    return str(path)


# tools/train.py as a process that a signal can kill: Python ignores SIGXFSZ (a write past the
# file size limit) by default; with the default action back, such a write kills the process
DIES_ON_SIGXFSZ = ('import runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); '
                   'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")')


def train(config, work, *options, env=None, check=True, killable=False, **popen):
    launcher = [PY, '-c', DIES_ON_SIGXFSZ] if killable else [PY]
    proc = subprocess.run([*launcher, 'tools/train.py', config, '--work-dir', str(work), *options],
                          cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})), **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f'train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-3000:]}')
    return proc


def logged_losses(work):
    """Iteration -> loss, from every run's scalars.json in the work dir."""
    losses = {}
    for run in sorted(os.listdir(work)):
        path = osp.join(work, run, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            with open(path) as f:
                for line in f:
                    entry = json.loads(line)
                    if 'loss' in entry:
                        losses[entry['step']] = entry['loss']
    return losses


def last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def saved_iteration(path):
    return torch.load(path, map_location='cpu', weights_only=False)['meta']['iter']


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_checkpoint_with_the_same_losses(tiny_data, tmp_path):
    config = tiny_config(tmp_path / 'tiny.py', tiny_data)
    train(config, tmp_path / 'whole')
    expected = logged_losses(tmp_path / 'whole')
    assert sorted(expected) == list(range(1, 9))

    work = tmp_path / 'killed'
    proc = subprocess.Popen([PY, 'tools/train.py', config, '--work-dir', str(work)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    while not (work / 'last_checkpoint').exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, 'training ended before it could be killed'
    resumed_from = last_checkpoint(work)
    start = saved_iteration(resumed_from)
    assert 2 <= start < 8

    out = train(config, work, '--resume').stdout
    assert f'resume: continuing from {resumed_from}' in out
    assert saved_iteration(last_checkpoint(work)) == 8
    losses = logged_losses(work)
    after = {i: losses[i] for i in range(start + 1, 9)}
    assert after == {i: expected[i] for i in after}  # bit for bit


def limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture(scope='module')
def two_iterations(tiny_data, tmp_path_factory):
    """A work dir holding iter_2.pth (max_keep_ckpts=1), trained once for the tests below."""
    root = tmp_path_factory.mktemp('two-iterations')
    config = tiny_config(root / 'tiny.py', tiny_data)
    train(config, root / 'work', '--cfg-options', 'train_cfg.max_iters=2')
    return config, root / 'work'


@pytest.fixture
def trained_two_iterations(two_iterations, tmp_path):
    """A copy of that work dir: ``(config, work dir, its iter_2.pth, the bytes of that file)``."""
    config, original = two_iterations
    work = tmp_path / 'work'
    shutil.copytree(original, work)
    good = work / 'iter_2.pth'
    (work / 'last_checkpoint').write_text(str(good))
    return config, work, good, good.read_bytes()


@pytest.mark.slow
def test_a_process_killed_while_writing_a_checkpoint_keeps_the_last_good_one(
        trained_two_iterations):
    config, work, good, good_bytes = trained_two_iterations
    limit = len(good_bytes) // 2  # the next checkpoint dies half-written (SIGXFSZ)
    proc = train(config, work, '--resume', '--cfg-options', 'train_cfg.max_iters=4',
                 check=False, killable=True, preexec_fn=limit_file_size(limit))
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-2000:]
    assert good.read_bytes() == good_bytes and last_checkpoint(work) == str(good)
    assert not (work / 'iter_4.pth').exists()
    assert (work / f'iter_4.pth{PARTIAL_SUFFIX}').exists()

    out = train(config, work, '--resume', '--cfg-options', 'train_cfg.max_iters=4').stdout
    assert f'iter_4.pth{PARTIAL_SUFFIX} is an interrupted write, ignored' in out
    assert f'resume: continuing from {good}' in out
    assert last_checkpoint(work) == str(work / 'iter_4.pth')
    assert saved_iteration(work / 'iter_4.pth') == 4 and not good.exists()  # max_keep_ckpts=1


@pytest.mark.slow
def test_a_full_disk_stops_training_and_keeps_the_last_good_checkpoint(trained_two_iterations):
    config, work, good, good_bytes = trained_two_iterations
    # Python ignores SIGXFSZ: the write fails with EFBIG (File too large), as with ENOSPC
    proc = train(config, work, '--resume', '--cfg-options', 'train_cfg.max_iters=4',
                 check=False, preexec_fn=limit_file_size(len(good_bytes) // 2))
    assert proc.returncode == 2
    assert (f'error: could not write checkpoint {work / "iter_4.pth"} (File too large); nothing '
            f'was replaced: the last good checkpoint {good} is kept') in proc.stderr
    assert good.read_bytes() == good_bytes and last_checkpoint(work) == str(good)
    assert not list(work.glob(f'*{PARTIAL_SUFFIX}'))


def free_port() -> int:
    """A TCP port nobody listens on now (other test runs may share this machine)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_train_the_same_weights_as_one_with_the_same_total_batch(
        tiny_data, tmp_path):
    config = tiny_config(tmp_path / 'tiny.py', tiny_data, augment=False)
    options = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    train(config, tmp_path / 'one', '--cfg-options', *options, 'train_dataloader.batch_size=4')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
                           str(tmp_path / 'two'), '--cfg-options', *options,
                           'train_dataloader.batch_size=2'], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=PY, PORT=str(free_port())))
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = torch.load(tmp_path / 'one' / 'iter_2.pth', map_location='cpu', weights_only=False)
    two = torch.load(tmp_path / 'two' / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert one['meta']['iter'] == two['meta']['iter'] == 2
    assert one['state_dict'].keys() == two['state_dict'].keys()
    for key, value in one['state_dict'].items():
        torch.testing.assert_close(two['state_dict'][key], value, rtol=0, atol=1e-5, msg=key)


def test_a_nan_loss_stops_training_naming_the_iteration_and_keeps_the_last_checkpoint(
        tiny_data, tmp_path):
    from mmengine.hooks import Hook

    from plugins.utils.fault_tolerance import NonFiniteLossError
    from plugins.utils.tools import build_runner, load_config

    class PoisonTheLossAfterTwoIterations(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == 2:
                runner.model.decode_head.loss_decode.loss_weight = float('nan')

    work = tmp_path / 'work'
    cfg = load_config(tiny_config(tmp_path / 'tiny.py', tiny_data), work_dir=str(work))
    cfg.train_cfg.max_iters = 4
    cfg.randomness = dict(seed=0)  # deterministic=True would stay on for the whole test session
    add_training_safeguards(cfg)
    runner = build_runner(cfg)
    runner.register_hook(PoisonTheLossAfterTwoIterations())
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    assert 'training stopped at iteration 3' in str(err.value)
    assert 'decode.loss_ce=nan' in str(err.value)
    assert f'the last good checkpoint is {work / "iter_2.pth"}' in str(err.value)
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['iter_2.pth']
    assert torch.isfinite(torch.cat([
        v.flatten().float() for v in torch.load(work / 'iter_2.pth', weights_only=False)[
            'state_dict'].values()])).all()


# ---- the pieces, without training ----------------------------------------------------------------
def test_resume_takes_the_checkpoint_last_checkpoint_names(tmp_path):
    for name in ('iter_2.pth', 'iter_4.pth'):
        torch.save({'w': torch.ones(1)}, tmp_path / name)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == (str(tmp_path / 'iter_2.pth'), [])


def test_resume_passes_over_a_truncated_checkpoint_to_the_newest_complete_one(tmp_path):
    torch.save({'w': torch.ones(1000)}, tmp_path / 'iter_2.pth')
    torch.save({'w': torch.ones(1000)}, tmp_path / 'iter_4.pth')
    os.utime(tmp_path / 'iter_2.pth', (1, 1))
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    path, notes = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth')
    assert notes == [f'{tmp_path / "iter_4.pth"} is incomplete or corrupt']
    assert not checkpoint_is_complete(str(tmp_path / 'iter_4.pth'))


def test_resume_refuses_a_work_dir_whose_checkpoints_are_all_broken(tmp_path):
    (tmp_path / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut')
    with pytest.raises(CheckpointError, match='no complete checkpoint to resume from'):
        find_resumable_checkpoint(str(tmp_path))


def test_resume_in_an_empty_work_dir_starts_from_scratch(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path / 'new')) == (None, [])


def test_safeguards_replace_the_checkpoint_hook_and_keep_its_arguments():
    from mmengine.config import Config
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5,
                                                         max_keep_ckpts=2)),
                      custom_hooks=[dict(type='EMAHook')]))
    add_training_safeguards(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook', interval=5,
                                                max_keep_ckpts=2)
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', 'RandomStateHook',
                                                     'FiniteLossHook']
    disabled = Config(dict(default_hooks=dict(checkpoint=None)))
    add_training_safeguards(disabled)
    assert disabled.default_hooks.checkpoint is None
