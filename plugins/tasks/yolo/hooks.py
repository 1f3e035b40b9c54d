"""The learning-rate and momentum schedule of Ultralytics YOLO training, as an mmengine hook.

Ultralytics (``BaseTrainer``) sets, at epoch ``e`` of ``E``, every parameter group's learning rate
to ``lr0 * lf(e)`` with the linear factor ``lf(e) = (1 - e / E) (1 - lrf) + lrf`` (``lrf`` 0.01).
During the first ``max(warmup_epochs * iterations_per_epoch, 100)`` iterations it interpolates,
per iteration: the biases' learning rate from ``warmup_bias_lr`` (0.1) down to ``lr0 * lf(e)``,
the other groups' from 0 up to it, and the momentum from ``warmup_momentum`` (0.8) up to the
optimizer's (0.937). mmengine's parameter schedulers scale every group alike, so the bias warm-up
needs this hook; it replaces ``param_scheduler`` (leave that unset).

The groups are told apart by their parameters: a group whose parameters all have ``bias`` in
their names is a bias group (Ultralytics' rule), so the optimizer needs per-parameter groups
(mmengine makes them when ``paramwise_cfg`` is set, e.g. for Ultralytics' weight decay policy:
``norm_decay_mult=0, bias_decay_mult=0``).
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...registry import HOOKS


@HOOKS.register_module()
class YOLOParamSchedulerHook(Hook):
    """Ultralytics' linear learning-rate decay with its bias / momentum warm-up.

    Args:
        lr_factor: ``lrf``, the final learning rate as a fraction of the initial one (0.01).
        warmup_epochs: warm-up length in epochs (3.0; fractions allowed).
        warmup_min_iters: the warm-up lasts at least this many iterations (100).
        warmup_bias_lr: the biases' starting learning rate (0.1).
        warmup_momentum: the starting momentum (0.8).
    """
    priority = 'NORMAL'

    def __init__(self, lr_factor: float = 0.01, warmup_epochs: float = 3.0,
                 warmup_min_iters: int = 100, warmup_bias_lr: float = 0.1,
                 warmup_momentum: float = 0.8):
        self.lr_factor = lr_factor
        self.warmup_epochs = warmup_epochs
        self.warmup_min_iters = warmup_min_iters
        self.warmup_bias_lr = warmup_bias_lr
        self.warmup_momentum = warmup_momentum

    def before_train(self, runner) -> None:
        groups = runner.optim_wrapper.optimizer.param_groups
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        bias_ids = {id(p) for name, p in model.named_parameters() if 'bias' in name}
        self.is_bias = [bool(g['params']) and all(id(p) in bias_ids for p in g['params'])
                        for g in groups]
        for group in groups:
            group.setdefault('initial_lr', group['lr'])
            if 'momentum' in group:
                group.setdefault('initial_momentum', group['momentum'])
        self.warmup_iters = max(round(self.warmup_epochs * len(runner.train_dataloader)),
                                self.warmup_min_iters)

    def lr_factor_at(self, epoch: int, max_epochs: int) -> float:
        """``lf(e)``: 1 at the first epoch, ``lr_factor`` after the last."""
        return max(1 - epoch / max_epochs, 0) * (1 - self.lr_factor) + self.lr_factor

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        factor = self.lr_factor_at(runner.epoch, runner.max_epochs)
        step = runner.iter
        warm = step <= self.warmup_iters
        progress = step / self.warmup_iters if warm else 1.0
        for group, is_bias in zip(runner.optim_wrapper.optimizer.param_groups, self.is_bias):
            target = group['initial_lr'] * factor
            start = self.warmup_bias_lr if is_bias else 0.0
            group['lr'] = start + (target - start) * progress
            if 'initial_momentum' in group:
                final = group['initial_momentum']
                group['momentum'] = (self.warmup_momentum + (final - self.warmup_momentum)
                                     * progress)
