"""Access to ``reference.yaml``: the papers' numbers for every preset, with their source."""
import functools
import os.path as osp

import yaml

PATH = osp.join(osp.dirname(__file__), 'reference.yaml')


@functools.lru_cache()
def load_reference() -> dict:
    with open(PATH) as f:
        return yaml.safe_load(f)


def reference_numbers(architecture: str, preset: str) -> dict:
    """The reference entry of one preset, e.g. ``reference_numbers('VAN', 'b0')['params_m']``."""
    entry = load_reference()[architecture]
    return dict(entry['presets'][preset], source=entry['source'], convention=entry['convention'])
