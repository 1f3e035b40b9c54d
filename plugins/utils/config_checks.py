"""Checks run by the tools before a model is built, so that mistakes surface as clear errors.

- An unknown ``type`` names the registry it was looked up in and the nearest registered names.
- A neck (or head) whose ``in_channels`` disagree with the backbone's outputs is reported with
  both lists, before the model is built and long before a shape error deep in a forward pass.
- A misspelt argument of the backbone or neck names the nearest argument the class takes.
"""
import difflib
import inspect
import re
from typing import List, Optional

import torch
import mmengine.registry as mm_registry
from mmengine.registry import MODELS, DefaultScope, Registry


class ConfigError(ValueError):
    """A config that cannot work, with what is wrong and how to fix it."""


def _root_registries():
    return {r.name: r for r in vars(mm_registry).values() if isinstance(r, Registry)}


def _names_in_scope(registry_name: str, scope: str) -> List[str]:
    root = _root_registries().get(registry_name, MODELS)
    names = set(root.module_dict)
    stack = [root]
    while stack:  # every descendant: the scoped registry and its own children
        reg = stack.pop()
        if reg.scope == scope or reg is root:
            names |= set(reg.module_dict)
        stack.extend(reg.children.values())
    return sorted(names)


def suggest_types(name: str, registry_name: str = 'model', scope: str = 'mmengine') -> List[str]:
    """Registered names closest to ``name`` (case-insensitive), best first."""
    names = _names_in_scope(registry_name, scope)
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.6)
    return [lowered[c] for c in close]


def explain_missing_type(err: KeyError, cfg=None) -> Optional[str]:
    """Turn mmengine's "X is not in the scope::registry registry" into a message with hints."""
    match = re.search(r'([\w.]+) is not in the (\w+)::([\w ]+?) registry', str(err))
    if not match:
        return None
    name, scope, registry_name = match.groups()
    hints = suggest_types(name, registry_name, scope)
    msg = f'unknown type {name!r}: nothing of that name is registered in {scope}::{registry_name}.'
    if hints:
        msg += f' Did you mean {", ".join(repr(h) for h in hints)}?'
    imports = (cfg or {}).get('custom_imports', {}).get('imports', [])
    if 'plugins' not in imports:
        msg += (" If it is one of the toolkit's modules, add custom_imports = "
                "dict(imports=['plugins'], allow_failed_imports=False) to the config.")
    return msg


def _backbone_channels(backbone_cfg) -> Optional[List[int]]:
    """Channels of the backbone's returned maps, from the module (built without weights)."""
    try:
        with torch.device('meta'):
            backbone = MODELS.build(backbone_cfg)
    except KeyError:
        raise
    except Exception:  # noqa: BLE001 (a backbone that can't be built on meta: check skipped)
        return None
    channels = getattr(backbone, 'out_channels', None)
    if isinstance(channels, (list, tuple)):
        return list(channels)
    try:  # libraries' backbones: read the channels off a shape-only forward pass
        with torch.no_grad():
            outs = backbone(torch.empty(1, backbone_cfg.get('in_channels', 3), 64, 64,
                                        device='meta'))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [int(o.shape[1]) for o in outs]
    except Exception:  # noqa: BLE001
        return None


def _describe(backbone_cfg) -> str:
    keys = ('arch', 'depth', 'out_indices')
    extra = ', '.join(f'{k}={backbone_cfg[k]!r}' for k in keys if k in backbone_cfg)
    return f"{backbone_cfg['type']}({extra})"


def check_channels(model_cfg) -> None:
    """Raise ConfigError when the neck's / head's in_channels disagree with the backbone's."""
    backbone_cfg = model_cfg.get('backbone')
    if not isinstance(backbone_cfg, dict):
        return
    channels = _backbone_channels(backbone_cfg)
    if channels is None:
        return
    neck = model_cfg.get('neck')
    neck = neck[0] if isinstance(neck, (list, tuple)) and neck else neck
    if isinstance(neck, dict) and 'in_channels' in neck:
        where, expected, index = 'model.neck.in_channels', neck['in_channels'], None
    else:
        head = model_cfg.get('decode_head') or model_cfg.get('head')
        if not isinstance(head, dict) or 'in_channels' not in head:
            return
        where, expected, index = 'in_channels of the head', head['in_channels'], head.get(
            'in_index')
    if isinstance(expected, int):
        got = channels[index if isinstance(index, int) else -1]
        if expected != got:
            raise ConfigError(f'{where}={expected} but backbone {_describe(backbone_cfg)} gives '
                              f'{got} channels there (its outputs: {channels}); set it to {got}.')
        return
    expected = list(expected)
    if isinstance(index, (list, tuple)):
        got = [channels[i] for i in index]
    else:
        got = channels
    if expected != got:
        raise ConfigError(f'{where}={expected} but backbone {_describe(backbone_cfg)} returns '
                          f'maps with {got} channels; set {where}={got} (or change the '
                          f"backbone's out_indices).")


def accepted_arguments(cls) -> Optional[List[str]]:
    """The keyword arguments ``cls(...)`` takes: those of its ``__init__`` and, while an
    ``__init__`` passes ``**kwargs`` on, of the classes above it. None when that chain ends
    open-ended (``**kwargs`` that reach no class naming them)."""
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names += [p.name for p in params if p.name != 'self' and p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def check_arguments(module_cfg, where: str) -> None:
    """Raise ConfigError for a key of ``module_cfg`` that its class does not take, naming the
    nearest argument it does take."""
    if not isinstance(module_cfg, dict) or not isinstance(module_cfg.get('type'), str):
        return
    with MODELS.switch_scope_and_registry(None) as registry:  # the config's default scope
        cls = registry.get(module_cfg['type'])
    accepted = accepted_arguments(cls) if inspect.isclass(cls) else None
    if accepted is None:
        return
    unknown = [k for k in module_cfg if k not in ('type', '_scope_') and k not in accepted]
    if not unknown:
        return
    name = unknown[0]
    hints = difflib.get_close_matches(name, accepted, n=3, cutoff=0.6)
    hint = f' Did you mean {", ".join(repr(h) for h in hints)}?' if hints else ''
    raise ConfigError(f'{where}: {cls.__name__} takes no argument {name!r}.{hint} '
                      f'{cls.__name__} takes: {", ".join(accepted)}.')


def check_model_config(cfg) -> None:
    """All checks that need only the config (run under the config's default scope)."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmengine')):
        try:
            for key in ('backbone', 'neck'):
                check_arguments(cfg.model.get(key), f'model.{key}')
            check_channels(cfg.model)
        except KeyError as err:
            msg = explain_missing_type(err, cfg)
            if msg is None:
                raise
            raise ConfigError(msg) from None
