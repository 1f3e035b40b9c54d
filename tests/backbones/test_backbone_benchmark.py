"""The backbone benchmark harness: one tiny case end to end, the peer registry, the time bound."""
import sys

import pytest
import torch

from benchmarks import backbone_peers, backbones
from benchmarks.backbone_peers import PeerContext, PeerUnavailable
from benchmarks.peers import import_timm
from plugins.backbones.reference import load_reference


def test_one_tiny_case_writes_the_table_with_the_peer_reason(tmp_path, monkeypatch):
    monkeypatch.delenv(backbone_peers.OFFICIAL_ROOT_ENV, raising=False)
    out = tmp_path / 'backbones.md'
    rows = backbones.main(['--presets', 'van-B0', '--sizes', '32x48x2', '--repeat', '1',
                           '--budget', '0.01', '--out', str(out)])
    ours, peer = rows
    assert (ours['who'], ours['case'], ours['size']) == ('ours', 'VAN-b0', [32, 48, 2])
    assert ours['ms'] > 0 and ours['mb'] > 0
    assert peer['ms'] is None and 'official code of' in peer['note']
    table = out.read_text()
    assert '| VAN-b0 | 32x48 | 2 |' in table and 'n/a (official code of' in table
    assert (tmp_path / 'backbones.json').exists()


def test_every_preset_of_a_registered_architecture_has_a_peer():
    reference = load_reference()
    for arch, entry in backbone_peers.REGISTRY.items():
        if arch in reference:
            assert set(reference[arch]['presets']) <= set(entry.presets), arch


def test_preset_globs_and_sizes():
    names = ['VAN-b0', 'VAN-b1', 'NAT-mini', 'DiNAT-mini']
    assert backbone_peers.matching('van-*, nat-MINI', names) == ['VAN-b0', 'VAN-b1', 'NAT-mini']
    assert backbones.parse_sizes('224x224x8,800x1216') == [(224, 224, 8), (800, 1216, 1)]


def test_a_call_projected_past_the_limit_is_skipped():
    prev = dict(ms=2000., mb=100., pixels=224 * 224)
    assert backbones._projected_skip(prev, 224 * 224 * 8, 60., 8000.) is None
    assert 'skipped: projected' in backbones._projected_skip(prev, 800 * 1216, 30., 8000.)


@pytest.mark.skipif(import_timm() is None, reason='timm is not installed')
def test_official_code_is_imported_from_the_root_and_removed_after(tmp_path):
    """A stand-in checkout in the layout of VAN-Classification: imported through the registry,
    its top-level package does not stay in sys.modules (another checkout may have one too)."""
    pkg = tmp_path / 'Visual-Attention-Network+VAN-Classification' / 'models'
    pkg.mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'van.py').write_text(
        'import torch.nn as nn\n'
        'class Van(nn.Conv2d):\n'
        '    def forward_features(self, x):\n'
        '        return self(x)\n'
        'def van_b0(pretrained=False):\n'
        '    return Van(3, 4, 1)\n')
    label, peer = backbone_peers.build_peer('VAN', 'b0', PeerContext(str(tmp_path)))
    assert label == 'official van.py van_b0' and not peer.training
    assert peer(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    assert 'models' not in sys.modules and 'models.van' not in sys.modules
    with pytest.raises(PeerUnavailable, match='no checkout of rayleizhu/BiFormer'):
        backbone_peers.build_peer('BiFormer', 't', PeerContext(str(tmp_path)))


@pytest.mark.skipif(import_timm() is None, reason='timm is not installed')
def test_timm_peers_build_feature_extractors():
    label, peer = backbone_peers.build_peer('HaloNet', 'halonet26t', PeerContext())
    assert label == 'timm halonet26t' and len(peer.feature_info) == 5
