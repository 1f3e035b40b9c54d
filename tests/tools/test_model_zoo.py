"""tools/analysis/model_zoo.py: one row per preset of both reference files, the counts right."""
import re

from plugins.backbones.reference import load_reference
from plugins.tasks.sr.reference import load_reference as load_sr_reference
from tools.analysis.model_zoo import render


def test_every_preset_has_a_row_and_the_counts_add_up():
    text = render()
    presets = [(a, p) for ref in (load_reference(), load_sr_reference())
               for a, entry in ref.items() for p in entry['presets']]
    for arch, preset in presets:
        section = text.split(f'## {arch}\n', 1)[1].split('\n## ', 1)[0]
        assert f'\n| {preset} |' in section, (arch, preset)
    total, direct, manual, none = map(int, re.search(
        r'(\d+) presets: (\d+) with a direct URL, (\d+) to download by hand from a web page, '
        r'(\d+) without', text).groups())
    assert total == len(presets) == direct + manual + none
    assert text.count('| by URL: ') == direct and text.count('| by hand: ') == manual
