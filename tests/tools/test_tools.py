"""The tools end to end on the demo data: train, resume, test, dist_train, and bad input."""
import importlib.util
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PY = sys.executable
DET_DEMO = 'configs/van/retinanet_van-b0_fpn_demo-coco.py'
SEG_DEMO = 'configs/van/fpn_van-b0_demo-ade20k.py'


class Payload:
    """An arbitrary class: unpickling it could run code, so the loader must refuse it."""


def run(*args, env=None, check=True):
    proc = subprocess.run([PY, *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-3000:]}')
    return proc


def run_in_process(capsys, tool, *args):
    """``python tools/<tool>.py ARGS`` for a run that must stop before training, in this process
    (the imports of a subprocess cost seconds): its exit code and what it wrote to stderr."""
    from plugins.utils.tools import run_tool
    spec = importlib.util.spec_from_file_location(f'tools_{tool}', osp.join(ROOT, 'tools',
                                                                          f'{tool}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        run_tool(lambda: module.main(list(args)))
    return exit_.value.code, capsys.readouterr().err


def det_options(demo_data, work_dir, epochs=1):
    root = f"{demo_data / 'coco'}/"
    return ['--work-dir', str(work_dir), '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
            f'test_evaluator.ann_file={root}annotations/instances_val2017.json',
            'train_dataloader.batch_size=2', f'train_cfg.max_epochs={epochs}',
            'default_hooks.logger.interval=1']


@pytest.mark.slow
def test_train_resume_and_test_on_the_demo_data(demo_data, tmp_path):
    work = tmp_path / 'det'
    run('tools/train.py', DET_DEMO, *det_options(demo_data, work, epochs=1))
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    # --resume continues from the checkpoint (loads mmengine's message hub: HistoryBuffer, numpy)
    run('tools/train.py', DET_DEMO, *det_options(demo_data, work, epochs=2), '--resume')
    assert (work / 'epoch_2.pth').is_file()
    out = tmp_path / 'results.pkl'
    show = tmp_path / 'show'
    proc = run('tools/test.py', DET_DEMO, str(work / 'epoch_2.pth'), '--out', str(out),
               '--show-dir', str(show), *det_options(demo_data, tmp_path / 'test')[2:],
               'model.test_cfg.score_thr=0.0')  # an untrained detector scores below 0.05
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 4
    drawn = [f for _, _, files in os.walk(show) for f in files if f.endswith('.jpg')]
    assert len(drawn) == 4


@pytest.mark.slow
def test_dist_train_runs_two_cpu_processes(demo_data, tmp_path):
    work = tmp_path / 'dist'
    proc = subprocess.run(['bash', 'tools/dist_train.sh', DET_DEMO, '2',
                           *det_options(demo_data, work, epochs=1)], cwd=ROOT,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=PY, PORT='29517'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'epoch_1.pth').is_file()


@pytest.mark.slow
def test_segmentation_demo_trains_and_tests(demo_data, tmp_path):
    root = str(demo_data / 'ade20k')
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
            'train_dataloader.batch_size=2']
    run('tools/train.py', SEG_DEMO, '--work-dir', str(tmp_path / 'seg'), *opts)
    show = tmp_path / 'seg-show'
    proc = run('tools/test.py', SEG_DEMO, str(tmp_path / 'seg' / 'iter_2.pth'), '--work-dir',
               str(tmp_path / 'seg-test'), '--show-dir', str(show), *opts)
    assert 'mIoU' in proc.stdout + proc.stderr
    drawn = [f for _, _, files in os.walk(show) for f in files if f.endswith('.png')]
    assert len(drawn) == 4


def test_unknown_type_names_the_nearest_registered_names(tmp_path):
    proc = run('tools/train.py', DET_DEMO, '--work-dir', str(tmp_path), '--cfg-options',
               'model.backbone.type=VANN', check=False)
    assert proc.returncode == 2
    assert "unknown type 'VANN'" in proc.stderr and "'VAN'" in proc.stderr


def test_neck_channel_mismatch_names_both_lists(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = run_in_process(capsys, 'train', DET_DEMO, '--work-dir', str(tmp_path),
                               '--cfg-options', 'model.neck.in_channels=[64,128,320,512]')
    assert code == 2
    assert '[64, 128, 320, 512]' in err and '[32, 64, 160, 256]' in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = run_in_process(capsys, 'test', DET_DEMO, str(tmp_path / 'nope.pth'),
                               '--work-dir', str(tmp_path))
    assert code == 2 and 'does not exist' in err


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    bogus = tmp_path / 'notes.pth'
    bogus.write_text('these are not weights')
    code, err = run_in_process(capsys, 'test', DET_DEMO, str(bogus), '--work-dir', str(tmp_path))
    assert code == 2 and 'is not a PyTorch checkpoint' in err
    assert bogus.read_text() == 'these are not weights'  # never touched


def test_checkpoints_with_foreign_objects_are_refused_with_the_type(tmp_path):
    from plugins.utils.checkpoint import CheckpointError, load_checkpoint_file
    path = tmp_path / 'foreign.pth'
    torch.save(dict(state_dict={}, extra=Payload()), path)
    with pytest.raises(CheckpointError, match='Payload'):
        load_checkpoint_file(str(path))


def test_a_yacs_training_config_beside_the_weights_is_refused_with_what_to_do(tmp_path,
                                                                             monkeypatch):
    """Swin-style training code saves its yacs CfgNode as 'config' beside the weights."""
    import sys
    import types
    from plugins.utils.checkpoint import CheckpointError, load_checkpoint_file
    yacs, config = types.ModuleType('yacs'), types.ModuleType('yacs.config')

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = 'yacs.config', 'CfgNode'
    config.CfgNode, yacs.config = CfgNode, config
    monkeypatch.setitem(sys.modules, 'yacs', yacs)
    monkeypatch.setitem(sys.modules, 'yacs.config', config)
    path = tmp_path / 'inline_swin_t.pth'
    torch.save(dict(model={'w': torch.ones(2)}, config=CfgNode(TYPE='inline')), path)
    with pytest.raises(CheckpointError, match=r'yacs training config \(yacs.config.CfgNode\).*'
                                              r're-save only its weights'):
        load_checkpoint_file(str(path))


def test_mmengine_message_hub_objects_load_safely(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import _load_checkpoint
    hub = MessageHub.get_instance('ckpt-test')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('dataset_meta', dict(classes=('a', 'b')))
    state = dict(meta=dict(epoch=1, seed=np.int64(3)), message_hub=hub.state_dict(),
                 state_dict={'w': torch.ones(2)})
    path = tmp_path / 'epoch_1.pth'
    torch.save(state, path)
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert loaded['meta']['seed'] == 3


@pytest.mark.slow
def test_amp_trains_with_bfloat16_on_cpu(demo_data, tmp_path):
    work = tmp_path / 'amp'
    opts = det_options(demo_data, work, epochs=1)
    run('tools/train.py', DET_DEMO, '--amp', *opts)
    assert (work / 'epoch_1.pth').is_file()
    assert 'CPUAutocastOptimWrapper' in (work / 'retinanet_van-b0_fpn_demo-coco.py').read_text()


@pytest.mark.slow
def test_mmpose_config_with_plugin_blocks_trains_tests_and_draws(tmp_path):
    """mmpose runs through the same tools (its visualizer loads without torchvision)."""
    from plugins.datasets.pose_demo import make_pose_demo
    root = tmp_path / 'pose'
    make_pose_demo(str(root), seed=0, num_train=8, num_val=4)
    root = f'{root}/'
    ann = f'{root}annotations/person_keypoints_val2017.json'
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=4']
    config = 'configs/blocks/td-hm_plugin-res18-eca_demo-coco.py'
    run('tools/train.py', config, '--work-dir', str(tmp_path / 'train'), *opts)
    show = tmp_path / 'show'
    proc = run('tools/test.py', config, str(tmp_path / 'train' / 'epoch_1.pth'), '--work-dir',
               str(tmp_path / 'test'), '--show-dir', str(show), *opts)
    assert 'coco/AP' in proc.stdout + proc.stderr
    assert len([f for _, _, files in os.walk(show) for f in files if f.endswith('.jpg')]) >= 4
