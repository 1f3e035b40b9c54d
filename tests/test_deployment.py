"""Deployment: ``torch.export``, ONNX (run by onnxruntime) and ``torch.compile`` give eager's numbers.

The full matrix (every architecture of ``reference.yaml`` at two sizes, the three checks) is
``tools/analysis/deployment_table.py`` -> ``docs/deployment.md``; exporting one backbone takes
seconds to tens of seconds here, so the tests keep the paths that only a traced graph takes (the
tracers do not follow the eager fast paths): neighborhood attention's generic path, shifted window
attention's bias and mask, the selective scan's traceable chunks (SS2D), top-k routing's gathers,
RaftMLP's resize matrices; a whole backbone (MixerFormer) through ONNX; one compiled model (the
banded NA kernel as a graph break); and the docs table covering every architecture.
"""
import os.path as osp

import pytest
import torch

from tools.analysis import deployment_table as deployment

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCHITECTURES = deployment.architectures()


def _mixer(name: str) -> torch.nn.Module:
    from benchmarks.mixers import collect_cases
    case = next(c for c in collect_cases() if c.name == name)
    torch.manual_seed(0)
    return case.build(32, 2).eval()


def assert_passes(got: dict):
    assert 'note' not in got, got['note']
    assert got['ok'], f'differs from eager by {got["diff"]:.1e}'


#: mixers whose traced path differs from their eager one (or gathers by computed indices)
ONNX_MIXERS = ['NeighborhoodAttention2d k7 d2 (DiNAT)', 'ShiftedWindowAttention w7 s3 rpb (Swin)',
               'BiLevelRoutingAttention S7 topk4']


@pytest.mark.parametrize('name', ONNX_MIXERS)
def test_mixer_runs_in_onnxruntime_with_eager_numbers(name):
    assert_passes(deployment.check(_mixer(name), 'onnx', (14, 18), channels=32))


def test_selective_scan_mixer_exports_with_eager_numbers():
    """SS2D through the scan's traceable chunks (its ONNX run: MambaYOLO in the docs table;
    the exporter takes three times as long as ``torch.export`` here)."""
    assert_passes(deployment.check(_mixer('SS2DMixer'), 'export', (14, 18), channels=32))


def test_backbone_runs_in_onnxruntime_with_eager_numbers():
    """MixerFormer: NA (its generic path), pooling and depth-wise mixers in one network."""
    assert_passes(deployment.check(deployment.small_backbone('MixerFormer'), 'onnx', (32, 48)))


def test_raftmlp_resize_runs_in_onnxruntime_off_the_pretraining_grid():
    """A RaftMLP block resizes to its 7 x 7 grid and back (the downscale onnxruntime's blocked
    cubic Resize refused at its default optimization level)."""
    from plugins.backbones.raftmlp import RaftBlock
    torch.manual_seed(0)
    block = RaftBlock(16, 7, 2, 2, 2, 'resize').eval()

    class ChannelsFirst(torch.nn.Module):  # the checks feed B C H W
        def forward(self, x):
            return block(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert_passes(deployment.check(ChannelsFirst(), 'onnx', (5, 11), channels=16))


def test_compiled_neighborhood_attention_has_eager_numbers():
    """``torch.compile`` with the banded NA kernel run eagerly inside (a graph break)."""
    assert_passes(deployment.check(_mixer('NeighborhoodAttention2d k7'), 'compile', (16, 20),
                                   channels=32))
    torch._dynamo.reset()


def test_docs_table_lists_every_architecture():
    with open(osp.join(ROOT, 'docs', 'deployment.md')) as f:
        text = f.read()
    rows = {line.split('|')[1].strip() for line in text.splitlines()
            if line.startswith('| ') and not line.startswith('| architecture')}
    assert set(ARCHITECTURES) <= rows, sorted(set(ARCHITECTURES) - rows)


def test_docs_give_a_reason_for_every_check_that_does_not_pass():
    """A cell that is not "ok" belongs to an architecture of ``KNOWN_LIMITS``, whose reason the
    docs give."""
    with open(osp.join(ROOT, 'docs', 'deployment.md')) as f:
        lines = f.read().splitlines()
    failing = {line.split('|')[1].strip() for line in lines if line.startswith('| ')
               and ('fails' in line or 'differs' in line or 'not run' in line)}
    assert failing <= set(deployment.KNOWN_LIMITS), sorted(failing)
    for arch in deployment.KNOWN_LIMITS:
        assert any(line.startswith(f'- **{arch}**') for line in lines), arch
