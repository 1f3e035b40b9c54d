"""docs/sr.md shows the reference numbers that the tests check (one source of truth)."""
import os.path as osp

from plugins.tasks.sr.reference import sr_presets

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def test_docs_parameter_table_matches_reference_yaml():
    text = open(osp.join(ROOT, 'docs', 'sr.md')).read()
    for arch in ('CATANet', 'DLGSANet'):
        for preset in sr_presets(arch).values():
            assert f"{preset['params']:,}" in text, (arch, preset)
