"""Training that survives faults without losing work: what ``tools/train.py`` adds to every run.

- :class:`AtomicCheckpointHook` (in place of mmengine's ``CheckpointHook``, same arguments): a
  checkpoint is written to ``<name>.part``, synced and renamed into place; ``last_checkpoint``
  is replaced the same way; only then are outdated checkpoints deleted. mmengine 0.10 deletes the
  oldest kept checkpoint *before* writing the new one, in place, so with ``max_keep_ckpts=1`` a
  process killed (or a disk filling up) during the write left no complete checkpoint at all.
- :class:`RandomStateHook`: checkpoints carry the random number generators' states and a resumed
  run continues from them, so that with a fixed seed the losses after ``--resume`` equal those of
  an uninterrupted run (dropout and stochastic depth draw the same masks).
- :class:`FiniteLossHook`: a loss that becomes NaN or infinite stops training at once, with the
  iteration and the value of every loss term, before anything of that iteration is saved.
- :func:`find_resumable_checkpoint`: what ``--resume`` (without a path) resumes from: the
  checkpoint named by ``last_checkpoint`` if it is complete, else the newest complete one.
"""
import os
import os.path as osp
import random
import zipfile
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

from plugins.registry import HOOKS

from .checkpoint import CheckpointError

PARTIAL_SUFFIX = '.part'
LAST_CHECKPOINT = 'last_checkpoint'


class NonFiniteLossError(RuntimeError):
    """Training stopped because a loss became NaN or infinite."""


def replace_file(path: str, write) -> None:
    """Write ``path`` through ``write(tmp_path)``, sync it, then rename it into place (atomic)."""
    partial = path + PARTIAL_SUFFIX
    try:
        write(partial)
        with open(partial, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        if osp.exists(partial):
            os.remove(partial)
        raise


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path ``<work_dir>/last_checkpoint`` names, or None."""
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        return f.read().strip() or None


def _write_text(text: str):
    def write(path):
        with open(path, 'w') as f:
            f.write(text)
    return write


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, except that no crash while saving can lose a checkpoint.

    Order of a save: write ``iter_N.pth.part`` (mmengine's ``Runner.save_checkpoint``), fsync,
    rename to ``iter_N.pth``, replace ``last_checkpoint`` the same way, then delete the checkpoints
    beyond ``max_keep_ckpts``. A process that dies at any point leaves the previous checkpoint
    and a ``last_checkpoint`` naming a complete file; a write that fails (disk full) removes its
    ``.part`` file and stops training with a message naming the last good checkpoint. Storage
    other than local files keeps mmengine's own order, and so does the ``best_*.pth`` file of
    ``save_best`` (mmengine replaces it by its own code, outside the regular checkpoints).
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        previous = read_last_checkpoint(runner.work_dir)
        name = self.filename_tmpl.format(step)
        path = osp.join(self.out_dir, name)
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)

        def write(partial):
            runner.save_checkpoint(self.out_dir, osp.basename(partial), self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                                   by_epoch=self.by_epoch, backend_args=self.backend_args,
                                   **self.args)

        if not is_main_process():  # Runner.save_checkpoint writes on the main process only
            write(path + PARTIAL_SUFFIX)
            return
        try:
            replace_file(path, write)
        except OSError as err:
            kept = (f'the last good checkpoint {previous} is kept' if previous else
                    'no earlier checkpoint exists')
            raise CheckpointError(f'could not write checkpoint {path} ({err.strerror or err}); '
                                  f'nothing was replaced: {kept}. Free space in {self.out_dir} '
                                  f'and resume with --resume.') from None
        replace_file(osp.join(runner.work_dir, LAST_CHECKPOINT), _write_text(path))
        for old in outdated:
            old_path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(old_path):
                os.remove(old_path)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random generators' states in each checkpoint; a resumed run continues from them.

    On resume mmengine re-seeds every generator from the config's seed. For an iteration-based
    loop it then replays the data loader up to the resumed iteration, which repeats exactly the
    draws of the data pipeline (numpy, ``random``), but not those of the model (dropout,
    stochastic depth: torch), so torch's state is restored. An epoch-based loop starts a new
    epoch without replay, so every generator is restored. Rank 0 writes the checkpoint; its states
    are restored on every rank unless ``randomness.diff_rank_seed`` gave ranks different seeds.
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._resumed_state: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        keys, pos, has_gauss, gauss = np.random.get_state()[1:]
        checkpoint['rng_state'] = dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            numpy=[keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            python=random.getstate())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_state = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        state, self._resumed_state = self._resumed_state, None
        resumed = runner.iter > 0 or runner.epoch > 0  # a load_from fine-tune starts at 0
        different_ranks = runner.world_size > 1 and runner._randomness_cfg.get('diff_rank_seed')
        if state is None or not resumed or different_ranks:
            return
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            keys, pos, has_gauss, gauss = state['numpy']
            np.random.set_state(('MT19937', np.asarray(keys, np.uint32), pos, has_gauss, gauss))
            random.setstate(state['python'])


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training when the loss or any loss term is NaN or infinite.

    Runs before the checkpoint hook, so the iteration whose loss broke is never saved and the
    last good checkpoint stays as it was. The error names the iteration, every loss term and
    the checkpoint to resume from.
    """
    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                  for k, v in (outputs or {}).items()
                  if 'loss' in k and (torch.is_tensor(v) or isinstance(v, (int, float)))}
        bad = [k for k, v in values.items() if not np.isfinite(v)]
        if not bad:
            return
        terms = ', '.join(f'{k}={v:.4g}' for k, v in values.items())
        last = runner.message_hub.get_info('last_ckpt')
        where = (f'the last good checkpoint is {last} (resume from it with --resume)' if last else
                 'no checkpoint had been saved yet')
        raise NonFiniteLossError(
            f'training stopped at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): the loss '
            f'is not finite ({", ".join(bad)}); loss terms: {terms}. Nothing of this iteration was '
            f'saved; {where}. Lower the learning rate, enable gradient clipping '
            f'(optim_wrapper.clip_grad) or look for a broken sample in the data.')


def add_training_safeguards(cfg) -> None:
    """Make a training config use the hooks above (``tools/train.py`` does this for every run)."""
    hooks = dict(cfg.get('default_hooks') or {})
    checkpoint = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
    if isinstance(checkpoint, dict) and checkpoint.get('type') in ('CheckpointHook',
                                                                   'mmengine.CheckpointHook'):
        hooks['checkpoint'] = dict(checkpoint, type='AtomicCheckpointHook')
    cfg.default_hooks = hooks
    custom = list(cfg.get('custom_hooks') or [])
    for name in ('RandomStateHook', 'FiniteLossHook'):
        if not any(isinstance(h, dict) and h.get('type') == name for h in custom):
            custom.append(dict(type=name))
    cfg.custom_hooks = custom


def checkpoint_is_complete(path: str) -> bool:
    """Whether a ``torch.save`` file is whole: every member of its zip archive reads back with
    the right CRC. A truncated file has no central directory and fails; files in torch's legacy
    (non-zip) format are taken as they are."""
    try:
        with open(path, 'rb') as f:
            if f.read(2) != b'PK':
                return osp.getsize(path) > 0
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The checkpoint ``--resume`` takes from ``work_dir``, and notes on what was passed over.

    First the one ``last_checkpoint`` names, if it is complete; else the newest complete
    ``*.pth`` of the work dir. Returns ``(None, notes)`` when there is none; raises
    CheckpointError when checkpoints exist but none is complete.
    """
    named = read_last_checkpoint(work_dir)
    names = os.listdir(work_dir) if osp.isdir(work_dir) else []
    found = sorted((osp.join(work_dir, n) for n in names if n.endswith('.pth')),
                   key=osp.getmtime, reverse=True)
    candidates = [named] if named else []
    candidates += [p for p in found if not named or osp.abspath(p) != osp.abspath(named)]
    notes = [f'{osp.join(work_dir, n)} is an interrupted write, ignored' for n in sorted(names)
             if n.endswith('.pth' + PARTIAL_SUFFIX)]
    for path in candidates:
        if not osp.exists(path):
            notes.append(f'{path} (named in {LAST_CHECKPOINT}) does not exist')
        elif not checkpoint_is_complete(path):
            notes.append(f'{path} is incomplete or corrupt')
        else:
            return path, notes
    if candidates:
        raise CheckpointError(f'no complete checkpoint to resume from in {work_dir}: '
                              f'{"; ".join(notes)}')
    return None, notes
