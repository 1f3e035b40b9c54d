"""Loading checkpoints safely, and loading official releases into the toolkit's modules.

torch >= 2.6 unpickles with ``weights_only=True``: only tensors, containers and allow-listed types.
The checkpoints mmengine writes also hold its ``HistoryBuffer`` and numpy arrays/scalars (in the
message hub), so ``--resume``, ``load_from`` and ``tools/test.py CHECKPOINT`` fail out of the box.
Rather than trusting every file (``weights_only=False`` runs arbitrary code from the pickle), the
toolkit allow-lists exactly the types mmengine stores, and refuses anything else with a message that
names the type. Importing :mod:`plugins` installs both (the allow-list and mmengine's local-file
loader with the clear errors); nothing else is changed.
"""
import argparse
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or holds types the toolkit does not unpickle."""


def _numpy_globals():
    found = [np.ndarray, np.dtype]
    for name in ('numpy.core.multiarray._reconstruct', 'numpy.core.multiarray.scalar',
                 'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar'):
        module_name, attr = name.rsplit('.', 1)
        try:
            module = __import__(module_name, fromlist=[attr])
            found.append((getattr(module, attr), name))
        except (ImportError, AttributeError):
            pass
    # numpy >= 1.25 pickles dtypes by their class, e.g. numpy.dtypes.Float64DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


#: What a checkpoint may hold beside tensors and plain containers: mmengine's message hub
#: (HistoryBuffer, numpy arrays and scalars) and the argparse.Namespace of the training arguments
#: that timm-style official releases (e.g. VAN's) store next to their weights.
SAFE_GLOBALS = [HistoryBuffer, OrderedDict, argparse.Namespace, *_numpy_globals()]


def history_buffer_method(obj, name: str):
    """The one use of ``getattr`` in mmengine checkpoints, and nothing else.

    A pickled ``HistoryBuffer`` names its statistics methods as ``getattr(HistoryBuffer, 'min')``.
    A general ``getattr`` would let a file reach any attribute of any object (a path to running
    code), so this stand-in returns only a HistoryBuffer's statistics methods.
    """
    is_buffer = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    known = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if is_buffer and name in known:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'refused getattr({obj!r:.40}, {name!r}): checkpoints '
                                 f'may only name the statistics methods of a HistoryBuffer')


def allow_mmengine_checkpoints() -> None:
    """Add the types that mmengine writes into checkpoints to torch's unpickling allow-list."""
    torch.serialization.add_safe_globals(
        SAFE_GLOBALS + [(history_buffer_method, '__builtin__.getattr'),
                        (history_buffer_method, 'builtins.getattr')])


def check_checkpoint_path(path: str) -> None:
    """Fail early, with a clear message, for a path that cannot be a checkpoint."""
    if not os.path.exists(path):
        raise CheckpointError(f'checkpoint {path!r} does not exist: check the path (relative paths '
                              f'are taken from the current directory {os.getcwd()!r})')
    if os.path.isdir(path):
        raise CheckpointError(f'checkpoint {path!r} is a directory; pass a .pth file inside it')
    with open(path, 'rb') as f:
        head = f.read(2)
    # torch.save writes a zip archive ('PK'); the legacy format starts with a pickle opcode
    if not (head == b'PK' or head[:1] == b'\x80'):
        raise CheckpointError(f'{path!r} is not a PyTorch checkpoint (a file written by '
                              f'torch.save starts with a zip or pickle header; this one starts '
                              f'with {head!r})')


def load_checkpoint_file(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and the mmengine allow-list, clear errors."""
    check_checkpoint_path(path)
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = re.search(r'GLOBAL ([\w.]+)', str(err))
        what = match.group(1) if match else 'an object'
        raise CheckpointError(
            f'refused to load {path!r}: it holds {what}, a type that is not on the toolkit\'s '
            f'allow-list of what checkpoints may contain (tensors, containers, numpy arrays, '
            f'mmengine\'s HistoryBuffer, argparse.Namespace). Unpickling other types can run '
            f'code from the file. If you trust the file, add the type with '
            f'torch.serialization.add_safe_globals([...]) before loading, or re-save only its '
            f'state_dict.') from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as err:
        raise CheckpointError(f'{path!r} is not a readable PyTorch checkpoint ({err}); it may be '
                              f'truncated or from an unrelated program') from None


def _load_from_local(filename, map_location):
    filename = os.path.expanduser(filename)
    return load_checkpoint_file(filename, map_location)


def install_local_loader() -> None:
    """Serve mmengine's local-file checkpoints (load_from, resume, test) through the safe loader."""
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_from_local)


STATE_DICT_KEYS = ('state_dict', 'model', 'params_ema', 'params', 'module')


def extract_state_dict(checkpoint) -> dict:
    """The parameter dict of a checkpoint, whichever wrapper its release uses."""
    state = checkpoint
    while isinstance(state, dict):
        inner = next((k for k in STATE_DICT_KEYS if k in state and isinstance(state[k], dict)),
                     None)
        if inner is None:
            break
        state = state[inner]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError('the checkpoint holds no state dict of tensors under any of the '
                              f'keys {STATE_DICT_KEYS}')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())


def _short_list(keys, limit=8):
    keys = sorted(keys)
    text = ', '.join(keys[:limit])
    return text + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    convert: Optional[Callable[[dict], dict]] = None,
                    prefix: Optional[str] = None,
                    map_location='cpu',
                    logger='current') -> dict:
    """Load ``checkpoint`` into ``module`` through ``convert``, and report what did not match.

    Args:
        checkpoint: path of the file (the official release's or the toolkit's own).
        convert: maps the release's key names to the module's (see ``plugins.utils.converters``).
        prefix: keep only keys under this prefix and strip it (e.g. ``'backbone.'`` to take a
            backbone out of a detector's checkpoint).

    Returns:
        dict with ``missing``, ``unexpected`` and ``mismatched`` key lists (also logged as one
        summary; nothing is silently ignored).
    """
    state = extract_state_dict(load_checkpoint_file(checkpoint, map_location))
    if prefix:
        state = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
        if not state:
            raise CheckpointError(f'no key of {checkpoint!r} starts with prefix {prefix!r}')
    if convert is not None:
        state = convert(state)
    own = module.state_dict()
    mismatched = [f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in state.items()
                  if k in own and own[k].shape != v.shape]
    state = OrderedDict((k, v) for k, v in state.items() if k not in own or own[k].shape == v.shape)
    result = module.load_state_dict(state, strict=False)
    report = dict(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys),
                  mismatched=mismatched)
    loaded = len(own) - len(report['missing']) - len(mismatched)
    lines = [f'Loaded {loaded}/{len(own)} tensors of {type(module).__name__} from {checkpoint}.']
    if report['missing']:
        lines.append(f'Missing in the checkpoint ({len(report["missing"])}, left at their '
                     f'initialisation): {_short_list(report["missing"])}.')
    if report['unexpected']:
        lines.append(f'Unused from the checkpoint ({len(report["unexpected"])}): '
                     f'{_short_list(report["unexpected"])}.')
    if mismatched:
        lines.append(f'Shape mismatches, not loaded ({len(mismatched)}): '
                     f'{_short_list(mismatched)}.')
    print_log(' '.join(lines), logger=logger)
    return report


class PretrainedFromRelease:
    """Mixin of modules whose ``init_cfg=dict(type='Pretrained', checkpoint=...)`` takes the
    official release as published: keys mapped by the converter registered under
    ``self.converter`` (``plugins.utils.converters``), mismatches reported by ``load_pretrained``."""
    converter: Optional[str] = None

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Map an official checkpoint's keys to this module's (identity without a converter)."""
        if self.converter is None:
            return state_dict
        from .converters import get_converter
        return get_converter(self.converter)(state_dict)

    def init_from_pretrained_cfg(self) -> bool:
        """Load a ``Pretrained`` init_cfg; False when the init_cfg is of another kind."""
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            return False
        load_pretrained(self, cfg['checkpoint'], convert=self.convert_checkpoint,
                        prefix=cfg.get('prefix'))
        self._is_init = True
        return True


allow_mmengine_checkpoints()
install_local_loader()
