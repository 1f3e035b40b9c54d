"""The Mamba-YOLO benchmark: its reference peer computes the scan, and the quick run writes the
table."""
import torch

from benchmarks import mamba_yolo
from plugins.ops.selective_scan import selective_scan


def test_reference_peer_equals_the_toolkit_scan():
    inputs = mamba_yolo.scan_inputs(5, 7, 8)
    expected = selective_scan(**inputs, delta_softplus=True)
    torch.testing.assert_close(mamba_yolo.selective_scan_ref(**inputs, delta_softplus=True),
                               expected, rtol=1e-4, atol=1e-4)


def test_quick_run_writes_every_site(tmp_path):
    rows, speed = mamba_yolo.main(['--quick', '--out', str(tmp_path)])
    table = (tmp_path / 'mamba_yolo_quick.md').read_text()
    assert [r['grid'] for r in rows] == [(2, 2), (4, 4), (8, 8), (16, 16)] and speed is None
    assert all(r['ours']['fwdbwd_ms'] and r['peer']['fwdbwd_ms'] for r in rows)
    assert '| 16x16 | 256 |' in table
