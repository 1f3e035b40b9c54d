"""Registry of demo-data generators: ``tools/make_demo_data.py`` runs every registered one.

A generator is ``fn(out_dir: str, seed: int) -> None``; it writes one task's data set, in the real
format of that task, under ``out_dir`` (``<root>/<task>``). Generators are deterministic.
"""
from typing import Callable, Dict

DEMO_GENERATORS: Dict[str, Callable[[str, int], None]] = {}


def register_demo(task: str):
    """Decorator: register ``fn(out_dir, seed)`` as the demo-data generator of ``task``."""

    def wrap(fn):
        if task in DEMO_GENERATORS:
            raise KeyError(f'a demo generator for task {task!r} is already registered '
                           f'({DEMO_GENERATORS[task].__module__})')
        DEMO_GENERATORS[task] = fn
        return fn

    return wrap
