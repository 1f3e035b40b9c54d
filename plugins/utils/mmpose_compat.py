"""mmpose without torchvision.

mmpose 1.3.2's ``PoseLocalVisualizer`` (the visualizer of every mmpose config) imports its SimCC
heatmap drawer, which imports ``torchvision`` for one ``ToPILImage``. A CPU build of torch 2.13 has
no torchvision that can load (PyPI's wheels link CUDA libraries), so without this, no mmpose
runner can be built. When ``torchvision`` cannot be imported, the toolkit stands in for that one
module: pose training, testing and skeleton drawing work, and only the SimCC heatmap drawer says
clearly that it needs torchvision. Where torchvision imports, nothing is changed.
"""
import importlib.util
import sys
import types

_MODULE = 'mmpose.visualization.simcc_vis'


class SimCCVisualizer:
    """Stand-in for mmpose's SimCC heatmap drawer when torchvision is unavailable."""

    def __init__(self, *args, **kwargs):
        raise ImportError('mmpose\'s SimCCVisualizer needs torchvision, which cannot be '
                          'imported here; everything else of mmpose.visualization works')

    def draw_instance_xy_heatmap(self, *args, **kwargs):
        raise ImportError('SimCC heatmap drawing needs torchvision')


def _torchvision_importable() -> bool:
    if importlib.util.find_spec('torchvision') is None:
        return False
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 (a torchvision whose C extension cannot load)
        return False


def install() -> None:
    if _MODULE in sys.modules or importlib.util.find_spec('mmpose') is None:
        return
    if _torchvision_importable():
        return
    module = types.ModuleType(_MODULE)
    module.SimCCVisualizer = SimCCVisualizer
    module.__doc__ = __doc__
    sys.modules[_MODULE] = module


install()
