"""Registration: every toolkit module is in the root registries under a name no library uses."""
import importlib

import pytest
from mmcv.cnn import build_plugin_layer
from mmengine.registry import DefaultScope

import plugins.registry as toolkit
from plugins.utils.config_checks import suggest_types

LIBRARIES = ('mmdet', 'mmseg', 'mmpose')
REGISTRIES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS',
              'TASK_UTILS')


def toolkit_names(root):
    return {name for name, cls in root.module_dict.items() if cls.__module__.startswith('plugins.')}


def library_names(registry_name):
    """Names each library registers (children of the root), with their modules imported."""
    names = {}
    for lib in LIBRARIES:
        importlib.import_module(f'{lib}.utils').register_all_modules(init_default_scope=False)
        child = getattr(importlib.import_module(f'{lib}.registry'), registry_name)
        names[lib] = set(child.module_dict)
    return names


@pytest.mark.parametrize('registry_name', REGISTRIES)
def test_no_toolkit_name_clashes_with_a_library_name(registry_name):
    root = getattr(toolkit, registry_name)
    ours = toolkit_names(root)
    for lib, theirs in library_names(registry_name).items():
        assert not ours & theirs, f'{registry_name}: {sorted(ours & theirs)} also in {lib}'
    mmcv_and_mmengine = {n for n, c in root.module_dict.items()
                         if not c.__module__.startswith('plugins.')}
    assert not ours & mmcv_and_mmengine


@pytest.mark.parametrize('scope', LIBRARIES)
def test_unprefixed_names_resolve_from_every_library_scope(scope):
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        assert registry.get('VAN').__module__ == 'plugins.backbones.van'
        assert registry.get('ECABlock').__module__ == 'plugins.blocks.eca'


def test_mmcv_plugin_builder_finds_blocks():
    name, layer = build_plugin_layer(dict(type='ELABlock', variant='B'), in_channels=64)
    assert name == 'ela' and layer.in_channels == 64


def test_unknown_type_suggests_the_nearest_names():
    assert suggest_types('ECABlok')[0] == 'ECABlock'
    assert 'VAN' in suggest_types('van')
