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
    return dict(entry['presets'][preset], source=entry['source'], convention=entry['convention'],
                with_imagenet_head=entry.get('with_imagenet_head', False))


def count_params_like_the_source(backbone, architecture: str, preset: str) -> float:
    """Millions of parameters of ``backbone``, counted by the convention of its reference entry
    (adding the 1000-class linear classifier on the last stage where the source counts it)."""
    count = sum(p.numel() for p in backbone.parameters())
    if reference_numbers(architecture, preset)['with_imagenet_head']:
        last = backbone.stage_channels[-1]
        count += last * 1000 + 1000
    return count / 1e6


@functools.lru_cache()
def release_checksums() -> dict:
    """URL -> SHA-256 of every official release that reference.yaml records with a checksum
    (``release: {url: ..., sha256: ...}`` of a preset)."""
    out = {}
    for entry in load_reference().values():
        for preset in entry.get('presets', {}).values():
            release = preset.get('release') or {}
            if release.get('url') and release.get('sha256'):
                out[release['url']] = release['sha256']
    return out
