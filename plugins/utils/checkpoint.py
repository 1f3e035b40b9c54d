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
import logging
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


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(('http://', 'https://'))


#: Hosts whose links open a web page (a viewer, a folder, a sign-in), not the file itself.
PAGE_HOSTS = ('drive.google.com', 'pan.baidu.com', 'sharepoint.com', '1drv.ms',
              'onedrive.live.com', 'pan.quark.cn')

#: A hash prefix in a file name, as torch.hub writes it: ``halonet26t_a1h_256-3083328c.pth``.
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


def is_page(url: str) -> bool:
    """True for a link to a web page (Google Drive, Baidu, OneDrive / SharePoint viewers)."""
    from urllib.parse import urlparse
    host = urlparse(url).netloc.lower()
    return any(host == h or host.endswith('.' + h) for h in PAGE_HOSTS)


def cache_file_name(url: str, release: Optional[dict] = None) -> str:
    """The name a download of ``url`` is cached under: the release's file name where
    ``reference.yaml`` records one, else the URL's own file name (a GitHub release asset, a
    Hugging Face file), else, for links whose path names no file (``.../f/<id>/?dl=1``,
    ``.../root/content``), the host, path and query made into one name, so that two such links
    never share a cached file."""
    from urllib.parse import urlparse
    if release and release.get('file'):
        return release['file']
    parts = urlparse(url)
    base = os.path.basename(parts.path)
    if '.' in base.strip('.'):
        return base
    slug = parts.netloc + parts.path + (f'?{parts.query}' if parts.query else '')
    return re.sub(r'[^A-Za-z0-9._-]+', '_', slug).strip('_') + '.pth'


def _sha256_of(path: str) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def cached_download(url: str, sha256: Optional[str] = None) -> str:
    """The local copy of a released checkpoint: downloaded once into torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``, where mmengine and torch.hub keep theirs), then reused.

    The cached file is named by :func:`cache_file_name`. Its SHA-256 is checked after the
    download and at every use: ``sha256`` if given, else the one ``reference.yaml`` records for
    this URL, else the hash prefix in the file name (torch.hub's convention); a file that fails is
    deleted and refused, and so is a download that is not a checkpoint (a web page). A link to a
    web page (Google Drive, OneDrive / SharePoint, Baidu) is refused with how to fetch it by hand;
    without network the error names the URL and where to place the file.
    """
    from torch.hub import download_url_to_file, get_dir
    if is_page(url):
        raise CheckpointError(
            f'{url} is a web page, not a file: it cannot be downloaded for you. Open it in a '
            f'browser, download the checkpoint and set the checkpoint to its local path '
            f'(docs/model-zoo.md lists which file each preset needs).')
    release = known_release(url)
    folder = os.path.join(get_dir(), 'checkpoints')
    path = os.path.join(folder, cache_file_name(url, release))
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        print_log(f'downloading {url} to {path}', logger='current')
        try:
            download_url_to_file(url, path, progress=False)  # to a temporary file, then renamed
        except Exception as err:  # noqa: BLE001 (any network or HTTP failure)
            raise CheckpointError(
                f'could not download {url} ({type(err).__name__}: {err}). Without network access, '
                f'download it on another machine and place it at {path} (or set the checkpoint '
                f'to a local path).') from None
        try:
            check_checkpoint_path(path)
        except CheckpointError:
            os.remove(path)
            raise CheckpointError(f'{url} served a file that is not a PyTorch checkpoint (a web '
                                  f'page?); it was deleted. Download the checkpoint by hand and '
                                  f'set the checkpoint to its local path.') from None
    expected = sha256 or release.get('sha256')
    prefix = HASH_IN_NAME.search(os.path.basename(path))
    if expected or prefix:
        digest = _sha256_of(path)
        if not (digest == expected.lower() if expected else digest.startswith(prefix.group(1))):
            os.remove(path)
            what = f"the release's {expected}" if expected else \
                f'{prefix.group(1)}... (the prefix in its name)'
            raise CheckpointError(f'{url} downloaded to {path} has SHA-256 {digest}, not '
                                  f'{what}: the file was deleted; the download was corrupt or '
                                  f'the release has changed.')
    return path


def known_release(url: str) -> dict:
    """What ``reference.yaml`` (the backbones' and the SR networks') records about the release
    at ``url`` (``file``, ``sha256``, ``copy``, ...; a mirror maps to its release); {} if none."""
    from ..backbones.reference import release_index
    from ..tasks.sr.reference import release_index as sr_release_index
    return {**release_index(), **sr_release_index()}.get(url, {})


def check_checkpoint_path(path: str) -> None:
    """Fail early, with a clear message, for a path that cannot be a checkpoint (a URL is
    fetched when it is loaded)."""
    if is_url(path):
        return
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
        if what.startswith('yacs.'):
            raise CheckpointError(
                f'refused to load {path!r}: beside its weights it holds the yacs training config '
                f'({what}) that Swin-style training code saves; unpickling it runs yacs code, '
                f'which the toolkit never does for a file. In an environment you trust, load it '
                f'once with torch.load(path, weights_only=False) and re-save only its weights, '
                f'e.g. torch.save({{"model": ckpt["model"]}}, new_path).') from None
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


#: Wrapper keys under which releases keep their weights, in the order taken when a module says
#: nothing else (``PretrainedFromRelease.checkpoint_copies``) and ``init_cfg`` names no ``copy``.
STATE_DICT_KEYS = ('state_dict', 'model', 'module', 'params', 'params_ema', 'state_dict_ema',
                   'model_ema')


def _wrapped(state) -> list:
    return [k for k, v in state.items() if isinstance(v, dict)] if isinstance(state, dict) else []


def extract_state_dict(checkpoint, copy: Optional[str] = None,
                       preference=STATE_DICT_KEYS) -> dict:
    """The parameter dict of a checkpoint, whichever wrapper its release uses.

    ``copy`` names the wrapper to take (e.g. ``'params_ema'`` of a BasicSR release, or
    ``'state_dict_ema'``); without it the first of ``preference`` that the file holds is taken, at
    every level of nesting. A ``module.`` prefix (DataParallel) is dropped.
    """
    state, chosen = checkpoint, []
    if copy is not None:
        if not (isinstance(state, dict) and isinstance(state.get(copy), dict)):
            raise CheckpointError(f'the checkpoint holds no copy {copy!r} of the weights; it '
                                  f'holds {_wrapped(state) or "a bare state dict"}')
        state = state[copy]
        chosen.append(copy)
    while isinstance(state, dict):
        inner = next((k for k in preference if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = state[inner]
        chosen.append(inner)
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v)
                                                           for v in state.values()):
        raise CheckpointError('the checkpoint holds no state dict of tensors under any of the '
                              f'keys {preference}')
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())
    state_copy = '.'.join(chosen) or None
    return StateDict(state, copy=state_copy)


class StateDict(OrderedDict):
    """A state dict that remembers which copy of a checkpoint it came from (``copy``)."""

    def __init__(self, *args, copy: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.copy = copy


def _short_list(keys, limit=8):
    keys = sorted(keys)
    text = ', '.join(keys[:limit])
    return text + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _structure(key: str) -> str:
    """A key with its block / layer indices blanked: ``stages.#.blocks.#.attn.qkv.weight``."""
    return re.sub(r'(?<=\.)\d+(?=\.)|^\d+(?=\.)', '#', key)


def _elements(key: str) -> list:
    """The indexed containers a key lies in: ``['stages.2.', 'stages.2.blocks.12.']``."""
    return [key[:m.end()] for m in re.finditer(r'(?:^|\.)\d+\.', key)]


def compare_state(own: dict, state: dict) -> dict:
    """How a (converted) state dict fits a module's (``own``: key -> shape): ``loaded`` keys, ``missing`` and
    ``unexpected`` ones, ``mismatched`` (key, file shape, model shape), and the two signs of a
    file of another preset: ``extra_blocks`` (unused keys in layers the model does not have, of a
    structure it has: the blocks of a deeper preset) and ``absent_blocks`` (the model's keys in
    layers the file does not have, of a structure the file holds elsewhere: a shallower preset).
    A layer both have but with other keys (an output norm only one of them builds) is neither."""
    mismatched = [(k, tuple(v.shape), tuple(own[k])) for k, v in state.items()
                  if k in own and tuple(own[k]) != tuple(v.shape)]
    bad = {k for k, _, _ in mismatched}
    loaded = [k for k in state if k in own and k not in bad]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]

    def in_layers_only_one_has(keys, this):
        structures = {_structure(k) for k in this}
        layers = {e for k in this for e in _elements(k)}
        return [k for k in keys if _structure(k) in structures and _elements(k)
                and _elements(k)[-1] not in layers]

    return dict(loaded=loaded, missing=missing, unexpected=unexpected, mismatched=mismatched,
                extra_blocks=in_layers_only_one_has(unexpected, own),
                absent_blocks=in_layers_only_one_has(missing, state))


def _fits(report: dict) -> bool:
    return not (report['mismatched'] or report['extra_blocks'] or report['absent_blocks'])


def guess_preset(module: torch.nn.Module, state: dict) -> Optional[str]:
    """The preset of ``module``'s class (its ``arch_zoo``) whose tensors the file fits, if any."""
    zoo = getattr(type(module), 'arch_zoo', None) or {}
    seen = []
    for name, arch in zoo.items():
        if arch in seen:  # an alias of a preset already tried
            continue
        seen.append(arch)
        try:
            with torch.device('meta'):
                candidate = type(module)(name)
        except Exception:  # noqa: BLE001 (a preset that needs other arguments: not a candidate)
            continue
        shapes = {k: v.shape for k, v in candidate.state_dict().items()}
        if _fits(compare_state(shapes, state)) and any(k in shapes for k in state):
            return name
    return None


def _refusal(module, checkpoint, report, state) -> str:
    name = type(module).__name__
    lines = [f'{checkpoint} does not fit this {name}:']
    if report['mismatched']:
        shown = '; '.join(f'{k}: file {a} vs model {b}' for k, a, b in report['mismatched'][:3])
        lines.append(f'{len(report["mismatched"])} tensors have other shapes ({shown}).')
    if report['extra_blocks']:
        lines.append(f'It holds {len(report["extra_blocks"])} tensors of layers this model does '
                     f'not have ({_short_list(report["extra_blocks"], 3)}).')
    if report['absent_blocks']:
        lines.append(f'It lacks {len(report["absent_blocks"])} tensors of layers this model has '
                     f'({_short_list(report["absent_blocks"], 3)}).')
    preset = guess_preset(module, state)
    if preset is not None:
        lines.append(f'It looks like a checkpoint of the {name} preset {preset!r}: build that '
                     f'preset (arch={preset!r}) to load it.')
    else:
        lines.append('It is a checkpoint of another preset or architecture.')
    lines.append("To load what fits anyway, set strict=False in the init_cfg (or call "
                 "load_pretrained(..., strict=False)).")
    return ' '.join(lines)


#: where the checkpoint of a whole mmdet / mmseg / mmpose model keeps its backbone's keys
MODEL_PREFIXES = ('backbone.', )


def _under(state: dict, prefix: str) -> dict:
    return OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))


def _model_prefix(state: dict, own: dict, convert) -> Optional[str]:
    """The prefix (``backbone.``) under which a whole model's checkpoint holds keys of ``own``."""
    for prefix in MODEL_PREFIXES:
        inner = _under(state, prefix)
        if inner and any(k in own for k in convert(inner)):
            return prefix
    return None


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    convert: Optional[Callable[[dict], dict]] = None,
                    prefix: Optional[str] = None,
                    map_location='cpu',
                    logger='current',
                    strict: bool = True,
                    copy: Optional[str] = None,
                    copies=STATE_DICT_KEYS) -> dict:
    """Load ``checkpoint`` into ``module`` through ``convert``, and report what did not match.

    A file of another preset or architecture is refused (``CheckpointError`` naming the first
    keys, both shapes, and the preset the file fits when one does): tensors of other shapes, or
    unused tensors of layers shaped like the model's own (a deeper preset), or missing ones of a
    structure the file holds (a shallower preset), or no tensor of the model's at all (another
    architecture). Keys only the release has (a classifier) or only the model has (the output
    norms of a dense-task backbone) are reported, not refused.

    Args:
        checkpoint: path of the file (the official release's or the toolkit's own), or the URL
            of a release (downloaded once into torch's hub cache, see :func:`cached_download`).
        convert: maps the release's key names to the module's (see ``plugins.utils.converters``).
        prefix: keep only keys under this prefix and strip it (e.g. ``'backbone.'`` to take a
            backbone out of a detector's checkpoint). None: the whole file, or, when none of its
            keys is the module's, the keys under ``backbone.`` (a whole model's checkpoint).
        strict: False loads whatever fits and logs the rest as a warning.
        copy: which copy of the weights to take (``'state_dict_ema'``, ``'params_ema'``, ...);
            None: the first of ``copies`` the file holds.

    Returns:
        dict with ``loaded``, ``missing``, ``unexpected``, ``mismatched``, ``extra_blocks``,
        ``absent_blocks`` key lists and the ``copy`` taken (also logged as one summary).
    """
    if is_url(checkpoint):
        checkpoint = cached_download(checkpoint)
    released = extract_state_dict(load_checkpoint_file(checkpoint, map_location), copy, copies)
    convert = convert or (lambda x: x)
    own = module.state_dict()
    if prefix:
        state = convert(_under(released, prefix))
        if not state:
            raise CheckpointError(f'no key of {checkpoint!r} starts with prefix {prefix!r}')
    else:
        state = convert(released)
        found = _model_prefix(released, own, convert) if not any(k in own for k in state) else None
        if found:
            state = convert(_under(released, found))
            print_log(f'{checkpoint} is a whole model\'s checkpoint: its tensors under {found!r} '
                      f'are taken (set prefix=... in the init_cfg to take others).', logger=logger)
    report = compare_state({k: v.shape for k, v in own.items()}, state)
    report['copy'] = released.copy
    if strict and not _fits(report):
        raise CheckpointError(_refusal(module, checkpoint, report, state))
    if strict and own and not report['loaded']:
        raise CheckpointError(
            f'none of the {len(state)} tensors of {checkpoint} is a tensor of this '
            f'{type(module).__name__} (the file has {_short_list(state, 3)}; the model '
            f'{_short_list(own, 3)}): it is a checkpoint of another architecture, or its keys '
            f'are under a prefix (set prefix=... in the init_cfg); strict=False loads nothing, '
            f'with a warning.')
    module.load_state_dict(OrderedDict((k, state[k]) for k in report['loaded']), strict=False)
    taken = report['copy']
    lines = [f'Loaded {len(report["loaded"])}/{len(own)} tensors of {type(module).__name__} '
             f'from {checkpoint}' + (f' (its {taken!r} copy).' if taken else '.')]
    if report['missing']:
        lines.append(f'Missing in the checkpoint ({len(report["missing"])}, left at their '
                     f'initialisation): {_short_list(report["missing"])}.')
    if report['unexpected']:
        lines.append(f'Unused from the checkpoint ({len(report["unexpected"])}): '
                     f'{_short_list(report["unexpected"])}.')
    if report['mismatched']:
        shown = [f'{k} {a} vs {b}' for k, a, b in report['mismatched']]
        lines.append(f'Shape mismatches, not loaded ({len(shown)}): {_short_list(shown)}.')
    few = len(report['loaded']) < len(own) / 2
    if few:
        lines.append('Less than half of the model was loaded.')
    level = logging.INFO if _fits(report) and not few else logging.WARNING
    print_log(' '.join(lines), logger=logger, level=level)
    return report


class PretrainedFromRelease:
    """Mixin of modules whose ``init_cfg=dict(type='Pretrained', checkpoint=...)`` takes the
    official release as published: keys mapped by the converter registered under
    ``self.converter`` (``plugins.utils.converters``), the copy of the weights the official
    evaluation loads (``checkpoint_copies``, in order of preference), a file of another preset
    refused by ``load_pretrained``. ``init_cfg`` may add ``prefix``, ``copy`` (which copy of the
    weights) and ``strict=False`` (load what fits)."""
    converter: Optional[str] = None
    checkpoint_copies = STATE_DICT_KEYS

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
                        prefix=cfg.get('prefix'), strict=cfg.get('strict', True),
                        copy=cfg.get('copy'), copies=self.checkpoint_copies)
        self._is_init = True
        return True


allow_mmengine_checkpoints()
install_local_loader()
