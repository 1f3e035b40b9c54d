"""Launching on several machines and sequence parallelism, end to end on this machine.

Three small training runs of a tiny sequence-parallel config (2 CPU processes sharing each batch,
3 iterations): one node sharded, one node unsharded, two "nodes" (two launches of
tools/dist_train.sh with NNODES=2 on localhost, one process each, sharded, so the ring crosses the
nodes). The losses must agree. The Slurm scripts are checked against a stand-in ``srun``.
"""
import itertools
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
from mmengine.dataset import DefaultSampler, InfiniteSampler, worker_init_fn

from plugins.datasets.replicated_samplers import (ReplicatedDefaultSampler,
                                                  ReplicatedInfiniteSampler,
                                                  replicated_worker_init_fn)
from plugins.utils.config_checks import ConfigError
from plugins.utils.tools import slurm_environment

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/sequence_parallel/fpn_sgformer-tiny-sp_demo-ade20k.py'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(work_dir, demo_data, nprocs, port, *options, **env):
    root = str(demo_data / 'ade20k')
    args = ['bash', 'tools/dist_train.sh', CONFIG, str(nprocs), '--work-dir', str(work_dir),
            '--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            'train_cfg.max_iters=3', 'default_hooks.logger.interval=1', 'val_cfg=None',
            'val_dataloader=None', 'val_evaluator=None', *options]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHON=sys.executable,
                                                OMP_NUM_THREADS='1', PORT=str(port), **env))


def finish(*procs, sharded=True):
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        # the processes held the same batches, so the global stages ran sharded
        assert not sharded or 'attends over its own tokens, unsharded' not in out


def losses(work_dir):
    """The logged loss of every iteration (rank 0's, from mmengine's scalars.json)."""
    found = [osp.join(d, 'scalars.json') for d, _, files in os.walk(work_dir)
             if 'scalars.json' in files]
    assert len(found) == 1, found
    with open(found[0]) as f:
        rows = [json.loads(line) for line in f]
    return [r['loss'] for r in rows if 'loss' in r]


@pytest.fixture(scope='module')
def one_node_sharded(demo_data, tmp_path_factory):
    work = tmp_path_factory.mktemp('one-node-sharded')
    finish(launch(work, demo_data, 2, free_port()))
    return losses(work)


@pytest.mark.slow
def test_sharded_training_gives_the_losses_of_the_unsharded_model(one_node_sharded, demo_data,
                                                                   tmp_path):
    finish(launch(tmp_path, demo_data, 2, free_port(), 'model.backbone.sequence_parallel=False'),
           sharded=False)
    unsharded = losses(tmp_path)
    assert len(unsharded) == len(one_node_sharded) == 3
    assert one_node_sharded == pytest.approx(unsharded, rel=1e-5)


@pytest.mark.slow
def test_two_node_launch_gives_the_losses_of_one_node(one_node_sharded, demo_data, tmp_path):
    port = free_port()
    nodes = [launch(tmp_path, demo_data, 1, port, NNODES='2', NODE_RANK=str(rank),
                    MASTER_ADDR='127.0.0.1') for rank in (0, 1)]
    finish(*nodes)
    assert losses(tmp_path) == pytest.approx(one_node_sharded, rel=1e-6)


def test_slurm_scripts_hand_the_job_to_srun(tmp_path):
    record = tmp_path / 'srun-args'
    fake = tmp_path / 'bin' / 'srun'
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{fake.parent}:{os.environ["PATH"]}', PYTHON='python3',
               GPUS='16', GPUS_PER_NODE='8')
    subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job', CONFIG, 'work', '--amp'],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    args = record.read_text().split('\n')
    assert {'-p', 'gpu', '--job-name=job', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
            '--launcher=slurm', '--work-dir=work', '--amp', CONFIG} <= set(args)
    assert args[args.index('-u') + 1].endswith('tools/train.py')
    subprocess.run(['bash', 'tools/slurm_test.sh', 'cpu', 'job', CONFIG, 'ckpt.pth'], cwd=ROOT,
                   env=dict(env, GRES='none'), check=True, capture_output=True)
    args = record.read_text().split('\n')
    assert args[args.index('-u') + 1].endswith('tools/test.py') and 'ckpt.pth' in args
    assert not any(a.startswith('--gres') for a in args)


def test_slurm_environment_gives_torch_its_variables():
    env = dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_LOCALID='1',
               SLURM_NODELIST='node[1-2]', MASTER_ADDR='10.0.0.1')
    assert slurm_environment(env) == dict(RANK='5', WORLD_SIZE='8', LOCAL_RANK='1',
                                          MASTER_ADDR='10.0.0.1', MASTER_PORT='29500')
    with pytest.raises(ConfigError, match='SLURM_PROCID'):
        slurm_environment({})


@pytest.mark.parametrize('rank', [0, 1, 2])
def test_replicated_samplers_give_every_process_the_one_process_stream(rank, monkeypatch):
    data = list(range(10))
    alone = list(DefaultSampler(data, seed=3)), list(itertools.islice(InfiniteSampler(
        data, seed=3), 25))
    monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda: (rank, 3))
    assert len(list(DefaultSampler(data, seed=3))) == 4  # the default: this rank's share
    assert list(ReplicatedDefaultSampler(data, seed=3)) == alone[0]
    assert list(itertools.islice(ReplicatedInfiniteSampler(data, seed=3), 25)) == alone[1]


def test_replicated_worker_seeds_are_process_zeros():
    worker_init_fn(1, num_workers=2, rank=0, seed=5)
    expected = np.random.rand()
    replicated_worker_init_fn(1, num_workers=2, seed=5)
    assert np.random.rand() == expected
