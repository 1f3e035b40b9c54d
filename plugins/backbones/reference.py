"""Access to ``reference.yaml``: the papers' numbers for every preset, with their source."""
import functools
import os.path as osp
import posixpath
from urllib.parse import urlparse

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


def index_releases(reference: dict) -> dict:
    """URL -> release of every preset of ``reference`` that records one (``release: {url, file,
    sha256, copy, mirrors, manual}``); each mirror URL maps to its release too. A URL shared by
    presets (a folder page) keeps no ``file``: it names none of them alone."""
    out, seen = {}, {}
    for entry in reference.values():
        for preset in entry.get('presets', {}).values():
            release = (preset or {}).get('release') or {}
            for url in [release.get('url')] + list(release.get('mirrors') or []):
                if not url:
                    continue
                seen[url] = seen.get(url, 0) + 1
                named = dict(release, url=url)
                if url != release['url'] and not release.get('file'):  # a mirror: same file
                    named['file'] = posixpath.basename(urlparse(release['url']).path)
                out[url] = named if seen[url] == 1 else \
                    {k: v for k, v in release.items() if k not in ('file', 'sha256')}
    return out


@functools.lru_cache()
def release_index() -> dict:
    """URL -> release of every backbone preset (see :func:`index_releases`)."""
    return index_releases(load_reference())
