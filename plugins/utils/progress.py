"""Live progress on the console while a model trains, validates or tests.

mmengine logs every ``logger.interval`` iterations, often minutes apart on a CPU, and a tool that
sends its log to a file shows nothing at all. :class:`ProgressHook` prints one short line every
few seconds instead (``tools/train.py --progress``, ``tools/test.py --progress``; ``tools/demo.py``
turns it on and shows only these lines)::

    [progress] train 125/300 (epoch 2/5) loss 0.532 | 1:23 left
    [progress] test 12/60 | 0:09 left
    [progress] train done: 300 iterations in 5:42
"""
import sys
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from plugins.registry import HOOKS

PREFIX = '[progress]'


def format_duration(seconds: float) -> str:
    """``75 -> '1:15'``, ``3725 -> '1:02:05'``."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


@HOOKS.register_module()
class ProgressHook(Hook):
    """Print ``[progress] <phase> <done>/<total> ... | <time> left`` at most every ``interval_s``.

    Training lines give the iteration (and the epoch, for epoch-based loops), the mean loss since
    the previous line and the time left, estimated from the pace since this run started (a
    resumed run counts from where it resumed). Each phase ends with a ``done`` line. Only the
    main process prints.

    Args:
        interval_s: seconds between two lines of one phase (the first and last are always shown).
    """
    priority = 'VERY_LOW'

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._phase_start = {}
        self._last_line = {}
        self._loss_sum, self._loss_count = 0.0, 0
        self._train_start_iter = 0

    # ---- printing ------------------------------------------------------------------------------
    def _print(self, runner, text: str) -> None:
        if runner.rank == 0:
            print(f'{PREFIX} {text}', file=sys.stdout, flush=True)

    def _start(self, phase: str) -> None:
        self._phase_start[phase] = time.monotonic()
        self._last_line[phase] = None

    def _due(self, phase: str, done: int, total: int) -> bool:
        last = self._last_line.get(phase)
        now = time.monotonic()
        if last is not None and now - last < self.interval_s and done not in (1, total):
            return False
        self._last_line[phase] = now
        return True

    def _left(self, phase: str, done: int, total: int) -> str:
        elapsed = time.monotonic() - self._phase_start.get(phase, time.monotonic())
        if done <= 0:
            return ''
        return f' | {format_duration(elapsed / done * (total - done))} left'

    # ---- training ------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._start('train')
        self._train_start_iter = runner.iter

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is not None:
            self._loss_sum += float(loss.detach() if hasattr(loss, 'detach') else loss)
            self._loss_count += 1
        done, total = runner.iter + 1, runner.max_iters
        if not self._due('train', done, total):
            return
        text = f'train {done}/{total}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            text += f' (epoch {runner.epoch + 1}/{runner.max_epochs})'
        if self._loss_count:
            text += f' loss {self._loss_sum / self._loss_count:.4g}'
            self._loss_sum, self._loss_count = 0.0, 0
        self._print(runner, text + self._left('train', done - self._train_start_iter,
                                              total - self._train_start_iter))

    def after_train(self, runner) -> None:
        elapsed = time.monotonic() - self._phase_start.get('train', time.monotonic())
        self._print(runner, f'train done: {runner.iter - self._train_start_iter} iterations in '
                            f'{format_duration(elapsed)}')

    # ---- validation and test -------------------------------------------------------------------
    def _eval_iter(self, runner, phase: str, batch_idx: int, dataloader) -> None:
        done, total = batch_idx + 1, len(dataloader)
        if self._due(phase, done, total):
            self._print(runner, f'{phase} {done}/{total}{self._left(phase, done, total)}')

    def _eval_done(self, runner, phase: str, dataloader) -> None:
        elapsed = time.monotonic() - self._phase_start.get(phase, time.monotonic())
        self._print(runner, f'{phase} done: {len(dataloader)} batches in '
                            f'{format_duration(elapsed)}')

    def before_val_epoch(self, runner) -> None:
        self._start('val')

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._eval_iter(runner, 'val', batch_idx, runner.val_dataloader)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._eval_done(runner, 'val', runner.val_dataloader)

    def before_test_epoch(self, runner) -> None:
        self._start('test')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._eval_iter(runner, 'test', batch_idx, runner.test_dataloader)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._eval_done(runner, 'test', runner.test_dataloader)
