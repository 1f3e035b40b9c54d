"""The mixer benchmark harness runs end to end in quick mode and writes its table and plot."""
import os

from benchmarks import mixers


def test_quick_benchmark_writes_table_with_every_case(tmp_path):
    rows = mixers.main(['--quick', '--out', str(tmp_path), '--only', 'Attention'])
    table = (tmp_path / 'mixers_quick.md').read_text()
    names = {r['case'] for r in rows}
    assert mixers.GLOBAL in names and len(names) > 3
    for name in names:
        assert name in table
    assert all(r['fwd_ms'] is not None for r in rows if r['who'] == 'ours')
    assert os.path.exists(tmp_path / 'mixers_quick.png') or 'matplotlib' not in str(rows)


def test_cases_are_collected_from_every_family_module():
    cases = mixers.collect_cases()
    assert len({c.name for c in cases}) == len(cases)
    assert {'local', 'linear', 'quadratic'} >= {c.scaling for c in cases}
