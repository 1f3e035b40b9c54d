"""Import the peer implementations (timm, natten) that the benchmark and the tests compare against.

The peers are not requirements of the toolkit. ``requirements/peers.txt`` pins them; they are
installed with ``pip install --no-deps --target .venv/peers -r requirements/peers.txt`` into a
folder of their own, so that nothing there can replace the torch of the main environment.

PyPI's torchvision cannot load its C extension beside a CPU-only torch of a different build; its
Python part still imports once the two operator schemas that its meta registrations refer to are
defined (``_define_torchvision_schemas``). timm needs nothing else from torchvision here.
"""
import importlib
import os
import sys
from typing import Optional

import torch

_PEERS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '.venv',
                          'peers')
_TORCHVISION_LIBRARY = None  # kept alive: dropping the Library object undefines the schemas


def peers_dir() -> str:
    """The folder the peers are installed into (``PLUGINS_PEERS_DIR`` overrides it)."""
    return os.environ.get('PLUGINS_PEERS_DIR', _PEERS_DIR)


def _add_peers_dir() -> None:
    path = peers_dir()
    if os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)


def _define_torchvision_schemas() -> None:
    global _TORCHVISION_LIBRARY
    if _TORCHVISION_LIBRARY is not None or 'torchvision' in sys.modules:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018  (already defined by a working torchvision)
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library('torchvision', 'DEF')
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    _TORCHVISION_LIBRARY = lib


def import_timm():
    """Return the ``timm`` module, or None when it is not installed here."""
    _add_peers_dir()
    _define_torchvision_schemas()
    try:
        return importlib.import_module('timm')
    except Exception:  # noqa: BLE001  (any failure means: no timm peer in this environment)
        return None


def import_natten():
    """Return the ``natten`` module when it imports and offers ``na2d``, else None."""
    _add_peers_dir()
    try:
        natten = importlib.import_module('natten')
    except Exception:  # noqa: BLE001
        return None
    return natten if hasattr(natten, 'na2d') else None


def timm_version() -> Optional[str]:
    timm = import_timm()
    return None if timm is None else timm.__version__
