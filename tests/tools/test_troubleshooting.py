"""Every row of docs/troubleshooting.md: the mistake, reproduced, gives exactly the message shown.

The cases live in tools/analysis/troubleshooting.py, which also writes the doc; after changing a
message, regenerate it with ``python tools/analysis/troubleshooting.py --out
docs/troubleshooting.md``.
"""
import importlib.util
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = osp.join(ROOT, 'docs', 'troubleshooting.md')


def load_catalogue():
    spec = importlib.util.spec_from_file_location(
        'troubleshooting', osp.join(ROOT, 'tools', 'analysis', 'troubleshooting.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


catalogue = load_catalogue()


@pytest.mark.parametrize('name', list(catalogue.CASES))
def test_the_doc_shows_the_message_this_bad_input_gives(name):
    message = catalogue.reproduce(name)
    for expected in catalogue.CASES[name].expect:
        assert expected in message, f'{name}: {expected!r} not in {message!r}'
    with open(DOC) as f:
        doc = f.read()
    assert catalogue.table_row(name, message) in doc, (
        f'docs/troubleshooting.md does not show the message of {name!r} as the code gives it '
        f'now:\n{message}\nRegenerate it: python tools/analysis/troubleshooting.py --out '
        f'docs/troubleshooting.md')
