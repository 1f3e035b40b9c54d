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
    with pytest.raises(ValueError, match='multiples of 256, got 224x256'):
        peer(torch.randn(1, 3, 224, 256))


def test_timed_calls_alternate_between_ours_and_the_peer():
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, who, fails=False):
            super().__init__()
            self.who, self.fails = who, fails

        def forward(self, x):
            if self.fails:
                raise ValueError('cannot take this input')
            calls.append(self.who)
            return x * 2

    got = backbones.measure_pair({'ours': Recorder('ours'), 'peer': Recorder('peer')},
                                 (8, 8, 1), repeat=3, budget_s=1.)
    assert calls == ['ours', 'peer'] + ['ours', 'peer'] * 3
    assert got['ours']['ms'] > 0 and got['peer']['mb'] >= 0
    got = backbones.measure_pair({'ours': Recorder('ours'), 'peer': Recorder('peer', True)},
                                 (8, 8, 1), repeat=1, budget_s=1.)
    assert got['peer'] == dict(note='failed: ValueError: cannot take this input')
    assert got['ours']['ms'] > 0


def test_peak_memory_is_measured_in_a_child_process():
    from benchmarks.mixers import peak_memory
    held = []
    assert 3.9 < peak_memory(lambda: held.append(torch.ones(2 ** 20))) < 4.1  # 4 MB of floats
    assert held == []  # the call ran in the forked child, not here


@pytest.mark.skipif(import_timm() is None, reason='timm is not installed')
def test_a_peer_built_for_224_says_so_and_numpy_is_left_as_it_was(tmp_path):
    """A stand-in SG-Former checkout: its build asks numpy for the removed ``np.float`` alias
    (given for the build only); inputs other than 224x224 get a ValueError that says so."""
    import numpy as np
    checkout = tmp_path / 'OliverRensu+SG-Former'
    checkout.mkdir()
    (checkout / 'sgformer.py').write_text(
        'import numpy as np\nimport torch.nn as nn\n'
        'class SG(nn.Conv2d):\n'
        '    def forward_features(self, x):\n'
        '        return self(x)\n'
        'def sgformer_s():\n'
        '    assert np.float is float\n'
        '    return SG(3, 4, 1)\n')
    label, peer = backbone_peers.build_peer('SGFormer', 's', PeerContext(str(tmp_path)))
    assert label == 'official sgformer.py sgformer_s' and 'float' not in np.__dict__
    assert peer(torch.randn(1, 3, 224, 224)).shape == (1, 4, 224, 224)
    with pytest.raises(ValueError, match='official SG-Former takes 224x224 only, got 256x224'):
        peer(torch.randn(1, 3, 256, 224))


def test_stand_ins_only_for_modules_that_are_missing():
    mods = backbone_peers._stand_in('not_installed_pkg.nn', counter=None)
    assert sorted(mods) == ['not_installed_pkg', 'not_installed_pkg.nn']
    assert mods['not_installed_pkg.nn'].counter is None
    assert backbone_peers._stand_in('os.path', join=None) == {}


def test_a_vendored_copy_of_an_installed_package_is_imported_and_the_installed_one_kept(tmp_path):
    """HyenaND vendors its own timm: the checkout's copy is imported while the installed one is
    hidden, and the installed one is back afterwards."""
    installed = type(sys)('vendored_pkg')
    sys.modules['vendored_pkg'] = installed
    (tmp_path / 'vendored_pkg').mkdir()
    (tmp_path / 'vendored_pkg' / '__init__.py').write_text('WHO = "vendored"\n')
    try:
        with backbone_peers._hidden_modules('vendored_pkg'):
            mod = PeerContext(str(tmp_path.parent)).import_official(
                f'owner/{tmp_path.name}', '', 'vendored_pkg')
        assert mod.WHO == 'vendored' and sys.modules['vendored_pkg'] is installed
    finally:
        del sys.modules['vendored_pkg']

def test_a_peer_built_per_input_size_keeps_one_model_per_size_and_refuses_others():
    built = []

    def build(size):
        built.append(size)
        return torch.nn.Identity()

    peer = backbone_peers.BuiltPerInputSize(build, lambda h, w: h % 16 == w % 16 == 0,
                                            'takes multiples of 16 only')
    for size in [(32, 48), (32, 48), (64, 64)]:
        peer(torch.randn(1, 3, *size))
    assert built == [(32, 48), (64, 64)] and not peer.models['32x48'].training
    with pytest.raises(ValueError, match='takes multiples of 16 only, got 40x48'):
        peer(torch.randn(1, 3, 40, 48))
