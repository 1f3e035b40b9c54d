"""Auxiliary losses of inner modules (e.g. routing attention's commitment loss) in the training
loss of any mmengine model (mmdet, mmseg, mmpose), without editing those libraries.

The interface (DESIGN.md, "Mixer-aware backbone"): a module with an auxiliary loss sets, during
a training forward, ``self.auxiliary_losses = {'loss_<name>': tensor}``: a dict attribute,
replaced at each forward; absent or empty means none. The name starts with ``loss`` because
mmengine's ``parse_losses`` adds to the total (and logs) exactly the entries whose name contains
``loss``.

The one mechanism that gets them into the loss dict: :func:`attach_auxiliary_losses` wraps the
model's ``loss`` method (which every mmengine ``BaseModel.forward(mode='loss')``, and so
``train_step``, calls), so that its dict also holds the auxiliary losses, summed by name over all
modules and then cleared (:func:`collect_auxiliary_losses`). :class:`AuxiliaryLossHook` does it at
``before_train``; a config turns it on with ``custom_hooks = [dict(type='AuxiliaryLossHook')]``.
The losses are computed inside the model's forward, so they are part of the graph that the
optimiser wrapper back-propagates (and that DDP sees); their gradients reach the module's
parameters. See docs/mixerformer.md.
"""
import types
from typing import Dict

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS

#: The attribute a module sets: ``{'loss_<name>': tensor}``.
AUXILIARY_LOSSES = 'auxiliary_losses'


def _losses_of(module: nn.Module, name: str) -> dict:
    losses = getattr(module, AUXILIARY_LOSSES, None)
    if not losses:
        return {}
    if not isinstance(losses, dict):
        raise TypeError(f'{name or "the model"} ({type(module).__name__}).{AUXILIARY_LOSSES} '
                        f'must be a dict {{"loss_<name>": tensor}}, got {type(losses).__name__}')
    for key, value in losses.items():
        if not (isinstance(key, str) and key.startswith('loss')):
            raise ValueError(f'{name} ({type(module).__name__}): auxiliary loss name {key!r} '
                             f'must start with "loss" (mmengine adds only such entries to the '
                             f'total loss)')
        if not torch.is_tensor(value):
            raise TypeError(f'{name} ({type(module).__name__}): auxiliary loss {key!r} must be '
                            f'a tensor, got {type(value).__name__}')
    return losses


def pending_auxiliary_losses(model: nn.Module) -> Dict[str, int]:
    """Names of the auxiliary losses currently set in ``model`` -> how many modules set each."""
    counts: Dict[str, int] = {}
    for name, module in model.named_modules():
        for key in _losses_of(module, name):
            counts[key] = counts.get(key, 0) + 1
    return counts


def collect_auxiliary_losses(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Sum the auxiliary losses of all modules of ``model`` by name, and clear them.

    Returns ``{'loss_<name>': tensor}`` (empty when no module set one). A loss that is not a
    scalar is averaged first, as mmengine averages the entries of a loss dict.
    """
    totals: Dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        losses = _losses_of(module, name)
        for key, value in losses.items():
            value = value.mean() if value.dim() else value
            totals[key] = totals[key] + value if key in totals else value
        if losses:
            setattr(module, AUXILIARY_LOSSES, {})
    return totals


def add_auxiliary_losses(losses: dict, model: nn.Module) -> dict:
    """``losses`` (a model's loss dict) with the collected auxiliary losses of ``model`` added."""
    auxiliary = collect_auxiliary_losses(model)
    clash = sorted(set(auxiliary) & set(losses))
    if clash:
        raise KeyError(f'auxiliary losses {clash} have the names of losses that '
                       f'{type(model).__name__}.loss already returns; rename them')
    losses.update(auxiliary)
    return losses


def _loss_with_auxiliary_losses(self, *args, **kwargs):
    return add_auxiliary_losses(self._loss_without_auxiliary_losses(*args, **kwargs), self)


def attach_auxiliary_losses(model: nn.Module) -> nn.Module:
    """Make ``model.loss(...)`` return the auxiliary losses of its modules too (in place;
    attaching twice is harmless). ``model`` is the mmengine model itself, not a DDP wrapper.

    Both the wrapper and the wrapped method are bound methods in the instance's ``__dict__``, so a
    ``deepcopy`` of the model (e.g. an EMA copy) is wrapped around its own ``loss``.
    """
    if is_model_wrapper(model):
        model = model.module
    if '_loss_without_auxiliary_losses' in vars(model):
        return model
    if not callable(getattr(model, 'loss', None)):
        raise TypeError(f'{type(model).__name__} has no loss method to add auxiliary losses to '
                        f'(an mmengine BaseModel of mmdet, mmseg or mmpose has one)')
    model._loss_without_auxiliary_losses = model.loss
    model.loss = types.MethodType(_loss_with_auxiliary_losses, model)
    return model


@HOOKS.register_module()
class AuxiliaryLossHook(Hook):
    """Adds the auxiliary losses that modules set (``self.auxiliary_losses``) to the training
    loss dict: wraps the model's ``loss`` at ``before_train``. In a config::

        custom_hooks = [dict(type='AuxiliaryLossHook')]
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        attach_auxiliary_losses(runner.model)
