"""The configs name the official release of their backbone: its URL where it downloads, else a
local file with a comment saying where the weights come from (a page) or that none exist."""
import glob
import os.path as osp
import re

import pytest

from plugins.backbones.reference import load_reference
from plugins.utils.checkpoint import is_page

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the reference.yaml entries a config folder's backbones belong to
FOLDERS = dict(van=['VAN'], nat=['NAT'], dinat=['DiNAT'], halonet=['HaloNet'],
               biformer=['BiFormer'], l2vit=['L2ViT'], inline=['InLinePVT', 'InLineSwin'],
               mixerformer=['MixerFormer'], grouppose=['VAN'], davit=['DaViT'], stvit=['STViT'],
               sgformer=['SGFormer'], favit=['FaViT'], dualtoken=['DualTokenViT'],
               convit=['ConViT'], tnt=['TNT'], hyena_vit=['HyenaViT'], raftmlp=['RaftMLP'])
#: configs of another architecture than their folder's, by a part of their name
BY_NAME = {'pyramid-tnt': ['PyramidTNT']}
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))
                 if 'demo' not in osp.basename(p) and "type='Pretrained'" in open(p).read()
                 and 'torchvision://' not in open(p).read()
                 and osp.basename(osp.dirname(p)) in FOLDERS)


def releases(path):
    archs = next((a for part, a in BY_NAME.items() if part in osp.basename(path)),
                 FOLDERS[osp.basename(osp.dirname(path))])
    return [ref.get('release') for arch in archs
            for ref in load_reference()[arch]['presets'].values()]


def checkpoint_of(text):
    """The init_cfg checkpoint of a config's text (through its ``pretrained = ...`` line)."""
    (value, ) = set(re.findall(r"checkpoint=('[^']+'|pretrained)", text))
    if value == 'pretrained':
        return re.search(r"^pretrained = '([^']+)'", text, re.M).group(1)
    return value.strip("'")


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_a_config_loads_its_backbones_release_by_url_or_says_where_it_is(path):
    text = open(path).read()
    checkpoint = checkpoint_of(text)
    recorded = [r for r in releases(path) if r]
    direct = {r['url'] for r in recorded if not (r.get('manual') or is_page(r['url']))}
    if direct:
        assert checkpoint in direct
    elif recorded:  # a page: the local file, and the page named
        assert not checkpoint.startswith('http')
        assert any(r['url'] in text for r in recorded)
    else:
        assert not checkpoint.startswith('http') and re.search(r'[Nn]o (official|weights)', text)
