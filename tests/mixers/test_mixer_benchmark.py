"""The mixer benchmark harness runs end to end in quick mode and writes its table and plot."""
import os

import pytest
import torch

from benchmarks import mixers
from benchmarks.peers import import_timm


def test_quick_benchmark_writes_table_with_every_case(tmp_path):
    rows = mixers.main(['--quick', '--out', str(tmp_path), '--only', 'HaloAttention'])
    table = (tmp_path / 'mixers_quick.md').read_text()
    names = {r['case'] for r in rows}
    assert names == {mixers.GLOBAL, 'HaloAttention b8 h3'}
    assert any(r['who'] == 'peer' for r in rows) == (import_timm() is not None)
    for name in names:
        assert name in table
    assert all(r['fwd_ms'] is not None for r in rows if r['who'] == 'ours')
    assert os.path.exists(tmp_path / 'mixers_quick.png') or 'matplotlib' not in str(rows)


def test_cases_are_collected_from_every_family_module():
    cases = mixers.collect_cases()
    assert len({c.name for c in cases}) == len(cases)
    assert {'local', 'linear', 'quadratic'} >= {c.scaling for c in cases}


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present')
def test_device_cuda_without_a_gpu_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(SystemExit, match='no CUDA device'):
        mixers.main(['--quick', '--device', 'cuda', '--only', 'Halo', '--out', str(tmp_path)])
    assert mixers.DEVICE == torch.device('cpu')


def test_a_call_that_fails_after_its_warm_up_is_reported_and_the_others_still_timed():
    calls = {'ours': 0, 'peer': 0}

    def ours():
        calls['ours'] += 1

    def peer():  # an allocation the heap can no longer serve, on its fourth call
        calls['peer'] += 1
        if calls['peer'] == 4:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    times, errors, reps = mixers.time_alternating({'ours': ours, 'peer': peer}, budget_s=0.01)
    assert reps >= 2 and set(times) == {'ours'} and calls['ours'] == 2 + reps
    assert "can't allocate memory" in errors['peer']


def test_a_rerun_of_some_cases_does_not_measure_global_attention_again(tmp_path, monkeypatch):
    """The merge keeps the global-attention rows of the file it merges into, so an isolated
    re-run of a few cases does not spend its time (minutes at 200x304) measuring it again."""
    mixers.main(['--quick', '--out', str(tmp_path), '--only', 'HaloAttention'])
    asked = []
    monkeypatch.setattr(mixers, 'run_isolated',
                        lambda *args, with_global=True, **kwargs: asked.append(with_global) or [])
    rows = mixers.main(['--quick', '--isolate', '--out', str(tmp_path), '--only', 'Halo'])
    assert asked == [False] and mixers.GLOBAL in {r['case'] for r in rows}
    (tmp_path / 'mixers_quick.json').unlink()
    mixers.main(['--quick', '--isolate', '--out', str(tmp_path), '--only', 'Halo'])
    assert asked == [False, True]


def test_a_peer_closure_has_its_weight_gradients_counted_like_ours():
    """A peer that keeps a module inside a closure has its parameters found and their gradients
    reset after each call, so its peak memory includes the weight gradients as ours does."""
    torch.manual_seed(0)
    ours = torch.nn.Linear(256, 256)
    hidden = torch.nn.Linear(256, 256)
    hidden.load_state_dict(ours.state_dict())

    def peer(x):
        return hidden(x)

    held = mixers.held_parameters(peer)
    assert {id(p) for p in held} == {id(p) for p in hidden.parameters()}
    x = torch.randn(4, 256)
    peaks = {}
    for who, fn, params in (('ours', ours, list(ours.parameters())), ('peer', peer, held)):
        run = mixers._runner(fn, x, True, params)
        run()  # warm-up: leaves no gradient behind
        assert all(p.grad is None for p in params)
        peaks[who] = mixers.profiled_peak_mb(run)
    assert peaks['peer'] == peaks['ours'] > 256 * 256 * 4 / 2 ** 20


def test_a_rerun_at_some_grids_keeps_the_case_rows_of_the_other_grids(tmp_path, monkeypatch):
    name = 'HaloAttention b8 h3'
    before = [r for r in mixers.main(['--quick', '--out', str(tmp_path), '--only', 'Halo'])
              if r['case'] == name]
    h, w, c = mixers.QUICK_GRIDS[0]
    again = [dict(r, fwd_ms=-1.0) for r in before if tuple(r['grid']) == (h, w) and r['dim'] == c]
    assert again and len(again) < len(before)
    monkeypatch.setattr(mixers, 'run_benchmark', lambda *args, **kwargs: again)
    rows = mixers.main(['--quick', '--out', str(tmp_path), '--only', 'Halo',
                        '--grids', f'{h}x{w}x{c}'])
    halo = [r for r in rows if r['case'] == name]
    assert len(halo) == len(before)
    assert sorted(r['fwd_ms'] == -1.0 for r in halo) == \
        sorted(tuple(r['grid']) == (h, w) and r['dim'] == c for r in halo)
