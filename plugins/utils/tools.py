"""What tools/train.py and tools/test.py share: config loading, checks, CPU distributed set-up."""
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (re-exported for the tools)

from .checkpoint import CheckpointError, check_checkpoint_path
from .config_checks import ConfigError, check_model_config, explain_missing_type
from .data_checks import DataError, build_checked_dataloaders, check_data_paths
from .fault_tolerance import NonFiniteLossError


def load_config(path: str, cfg_options=None, work_dir=None, launcher='none') -> Config:
    """Read a config, apply ``--cfg-options`` and choose the work dir as OpenMMLab tools do."""
    if not osp.isfile(path):
        raise ConfigError(f'config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def enable_amp(cfg: Config) -> None:
    """Mixed precision: fp16 with dynamic loss scaling on GPU, bfloat16 autocast on CPU.

    Also called for configs that ask for mmengine's ``AmpOptimWrapper`` themselves (the paper
    configs whose official training is mixed precision): on a machine without a GPU, where that
    wrapper refuses to start, they get the CPU form instead.
    """
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'CPUAutocastOptimWrapper':
        return
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:  # mmengine's AmpOptimWrapper refuses CPU; see plugins/utils/amp.py
        cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.dtype = 'bfloat16'


def setup_distributed(cfg: Config) -> None:
    """Start the process group ourselves on a machine without CUDA (gloo, CPU DDP).

    mmengine's launcher assumes one GPU per process (it calls torch.cuda.set_device and gives DDP
    device_ids); on a CPU machine we initialise gloo here, and the runner then finds the group
    already up and wraps the model in DDP without device ids.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        if cfg.launcher == 'slurm':  # mmengine's slurm set-up selects a GPU: do its env part
            os.environ.update(slurm_environment(os.environ))
        dist.init_process_group(backend='gloo')
    cfg.env_cfg = cfg.get('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper['device_ids'] = None  # CPU modules: DDP takes no device ids
    cfg.model_wrapper_cfg = wrapper
    # SyncBN needs CUDA: plain BN per process on CPU
    cfg.model = _replace_norm(cfg.model, 'SyncBN', 'BN')


def slurm_environment(env) -> dict:
    """The ``torch.distributed`` variables of a process that ``srun`` started, as mmengine's
    slurm launcher derives them: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` from ``SLURM_PROCID``,
    ``SLURM_NTASKS``, ``SLURM_LOCALID``; ``MASTER_ADDR`` (unless set) the first host of
    ``SLURM_NODELIST``; ``MASTER_PORT`` (unless set) 29500."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in env]
    if missing:
        raise ConfigError(f'--launcher slurm runs under srun, which sets {missing}; start the job '
                          f'with tools/slurm_train.sh / slurm_test.sh, or use --launcher pytorch '
                          f'(tools/dist_train.sh)')
    addr = env.get('MASTER_ADDR')
    if not addr:
        try:
            addr = subprocess.run(['scontrol', 'show', 'hostname', env['SLURM_NODELIST']],
                                  capture_output=True, text=True, check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError) as err:
            raise ConfigError(f'could not read the first host of SLURM_NODELIST='
                              f'{env["SLURM_NODELIST"]!r} with scontrol ({err}); set '
                              f'MASTER_ADDR') from None
    return dict(RANK=env['SLURM_PROCID'], WORLD_SIZE=env['SLURM_NTASKS'],
                LOCAL_RANK=env.get('SLURM_LOCALID', '0'), MASTER_ADDR=addr,
                MASTER_PORT=env.get('MASTER_PORT', '29500'))


def _replace_norm(node, old, new):
    if isinstance(node, dict):
        node = type(node)({k: _replace_norm(v, old, new) for k, v in node.items()})
        if node.get('type') == old:
            node['type'] = new
    elif isinstance(node, list):
        node = [_replace_norm(v, old, new) for v in node]
    return node


def build_runner(cfg: Config, data_splits=()):
    """Run the config checks, then build mmengine's Runner, with clear errors for bad input.

    ``data_splits`` (e.g. ``('train', 'val')``): data sets to check and build now rather than
    when the loop starts (see plugins/utils/data_checks.py).
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    check_model_config(cfg)
    if cfg.get('load_from'):
        check_checkpoint_path(cfg.load_from)
    check_data_paths(cfg, data_splits)
    try:
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    except KeyError as err:
        msg = explain_missing_type(err, cfg)
        if msg is None:
            raise
        raise ConfigError(msg) from None
    build_checked_dataloaders(runner, data_splits)
    return runner


def add_progress(cfg: Config) -> None:
    """Print a progress line every few seconds (``--progress``; see plugins/utils/progress.py)."""
    custom = list(cfg.get('custom_hooks') or [])
    if not any(isinstance(h, dict) and h.get('type') == 'ProgressHook' for h in custom):
        custom.append(dict(type='ProgressHook'))
    cfg.custom_hooks = custom


def run_tool(main) -> None:
    """Call ``main()``; a ConfigError, DataError, CheckpointError or NonFiniteLossError ends the
    tool with its message, exit 2."""
    try:
        main()
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)


def local_rank_env() -> None:
    """torchrun sets LOCAL_RANK; older launchers pass --local_rank. Keep both working."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
