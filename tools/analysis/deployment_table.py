"""Deployment of every backbone: ``torch.compile``, ``torch.export`` and ONNX -> docs/deployment.md.

    python tools/analysis/deployment_table.py [--out docs/deployment.md] [--arch NAT,DiNAT]
        [--checks export,onnx,compile]

The raw results go beside the table (``docs/deployment.json``); a run of some architectures or
some checks updates them and rewrites the whole table.

For every architecture of ``plugins/backbones/reference.yaml`` (its small model, as the contract
test builds it: ``tests/backbones/test_contract.py``), in eval mode, at two input sizes:

* export: ``torch.export.export`` at that size (static shapes), the exported program run;
* onnx: ``torch.onnx.export`` (the dynamo exporter, onnxscript) and ``onnxruntime`` on the CPU;
* compile: ``torch.compile`` (inductor, CPU), and its speed against eager (median of alternating
  calls, one thread, process CPU time; the compilation itself left out, its wall time given).

A check passes when every output map equals eager's within ``rtol = atol = 1e-4``; the table
gives the largest absolute difference, or the reason a check could not run. The tests
(``tests/test_deployment.py``) run the same checks: export and ONNX for every architecture,
compile for a few.
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import plugins  # noqa: E402,F401
from plugins.backbones.reference import load_reference  # noqa: E402

SIZES = [(64, 96), (97, 131)]
TOLERANCE = 1e-4
CHECKS = ('export', 'onnx', 'compile')


def small_backbone(name: str) -> torch.nn.Module:
    """The architecture's small model of the contract test, in eval mode, seeded."""
    from tests.backbones.test_contract import build
    torch.manual_seed(0)
    return build(name).eval()


def _as_list(outs) -> List[torch.Tensor]:
    return [torch.as_tensor(o) for o in (outs if isinstance(outs, (tuple, list)) else [outs])]


def compare(outs, refs) -> Tuple[bool, float]:
    """(every output within tolerance of its reference, largest absolute difference)."""
    outs, refs = _as_list(outs), _as_list(refs)
    if len(outs) != len(refs) or any(o.shape != r.shape for o, r in zip(outs, refs)):
        return False, float('inf')
    diff = max(float((o.float() - r.float()).abs().max()) for o, r in zip(outs, refs))
    ok = all(torch.allclose(o.float(), r.float(), rtol=TOLERANCE, atol=TOLERANCE)
             for o, r in zip(outs, refs))
    return ok, diff


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints and warnings."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter('ignore')
        yield


def run_export(model: torch.nn.Module, x: torch.Tensor):
    """Outputs of the ``torch.export`` program of ``model`` at ``x``'s shape."""
    with torch.no_grad(), _quiet():
        program = torch.export.export(model, (x, ))
        return program.module()(x)


def run_onnx(model: torch.nn.Module, x: torch.Tensor, optimization: str = 'ORT_ENABLE_ALL'):
    """Outputs of ``model`` exported to ONNX and run by onnxruntime on the CPU, its graph
    optimized at ``optimization`` (a ``GraphOptimizationLevel`` name; ALL is onnxruntime's
    default)."""
    import onnxruntime
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), _quiet():
        path = osp.join(tmp, 'model.onnx')
        torch.onnx.export(model, (x, ), path, dynamo=True, external_data=False)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel,
                                                   optimization)
        options.log_severity_level = 4  # its own error print: the exception says it
        session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        return [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]


def run_onnx_basic(model: torch.nn.Module, x: torch.Tensor):
    """:func:`run_onnx` with onnxruntime's basic graph optimizations only (no layout changes)."""
    return run_onnx(model, x, 'ORT_ENABLE_BASIC')


def run_compile(model: torch.nn.Module, x: torch.Tensor, compiled=None):
    """Outputs of ``torch.compile(model)`` (inductor) at ``x``."""
    compiled = compiled or torch.compile(model)
    with torch.no_grad():
        return compiled(x)


RUNNERS = dict(export=run_export, onnx=run_onnx, onnx_basic=run_onnx_basic, compile=run_compile)


def check(model: torch.nn.Module, how: str, size: Sequence[int], channels: int = 3) -> dict:
    """``dict(ok, diff)`` of one check at one size (an input of ``channels`` channels), or
    ``dict(ok=False, note=reason)``."""
    torch.manual_seed(1)
    x = torch.randn(1, channels, *size)
    with torch.no_grad():
        ref = model(x)
    try:
        ok, diff = compare(RUNNERS[how](model, x), ref)
    except Exception as err:  # noqa: BLE001  (the reason goes into the table)
        first = str(err).strip().splitlines()[0] if str(err).strip() else ''
        got = dict(ok=False, note=f'{type(err).__name__}: {first[:160]}')
        if how == 'onnx':  # does it run without onnxruntime's layout optimizations?
            basic = check(model, 'onnx_basic', size, channels)
            if 'diff' in basic:
                got['basic'] = basic
        return got
    return dict(ok=ok, diff=diff)


def speed(model: torch.nn.Module, size: Sequence[int], reps: int = 5) -> Dict[str, float]:
    """Eager and compiled ms (median of alternating calls) and the compilation's wall seconds."""
    from benchmarks.mixers import time_once
    x = torch.randn(1, 3, *size)
    compiled = torch.compile(model)
    start = time.perf_counter()
    with torch.no_grad():
        compiled(x)
    compile_s = time.perf_counter() - start
    runs = dict(eager=model, compiled=compiled)
    times = {who: [] for who in runs}
    with torch.no_grad():
        for who, m in runs.items():
            m(x)
        for _ in range(reps):
            for who, m in runs.items():
                times[who].append(time_once(lambda m=m: m(x)) * 1e3)
    return dict(eager_ms=statistics.median(times['eager']),
                compiled_ms=statistics.median(times['compiled']), compile_s=compile_s)


def architectures(only: Optional[str] = None) -> List[str]:
    names = list(load_reference())
    if only:
        wanted = {n.strip().lower() for n in only.split(',')}
        names = [n for n in names if n.lower() in wanted]
    return names


def matrix(names: Sequence[str], checks: Sequence[str] = CHECKS, with_speed: bool = True,
           log=print) -> List[dict]:
    rows = []
    for name in names:
        row = dict(arch=name)
        try:
            model = small_backbone(name)
        except Exception as err:  # noqa: BLE001
            rows.append(dict(row, note=f'cannot build: {type(err).__name__}: {err}'))
            continue
        for how in (c for c in checks if c != 'speed'):
            for size in SIZES:
                start = time.perf_counter()
                row[cell_key(how, size)] = dict(check(model, how, size),
                                        seconds=time.perf_counter() - start)
                torch._dynamo.reset()
        if with_speed and ('compile' in checks or 'speed' in checks):
            try:
                row['speed'] = speed(model, SIZES[0])
            except Exception as err:  # noqa: BLE001
                row['speed'] = dict(note=f'{type(err).__name__}: {str(err)[:120]}')
            torch._dynamo.reset()
        log(summary_line(row, checks), flush=True)
        rows.append(row)
    return rows


def cell_key(how: str, size: Sequence[int]) -> str:
    """Key of one check at one size in a row, e.g. ``'onnx 64x96'``."""
    return f'{how} {size[0]}x{size[1]}'


def merge_rows(kept: List[dict], fresh: List[dict], order: Sequence[str]) -> List[dict]:
    """``kept`` rows (an earlier run's) updated with the checks and speeds of ``fresh`` rows
    (a partial run: some architectures or some checks), in ``order`` of architectures."""
    by_arch = {r['arch']: dict(r) for r in kept}
    for row in fresh:
        if 'note' in row:  # could not build: the whole row is replaced
            by_arch[row['arch']] = row
        else:
            by_arch.setdefault(row['arch'], dict(arch=row['arch'])).update(row)
            by_arch[row['arch']].pop('note', None)
    return [by_arch[a] for a in order if a in by_arch]


def _cell(got: Optional[dict]) -> str:
    if got is None:
        return 'not run'
    if 'note' in got:
        basic = got.get('basic')
        also = f'; with ORT_ENABLE_BASIC: {_cell(basic)}' if basic else ''
        return f'fails: {got["note"]}{also}'
    return f'{"ok" if got["ok"] else "differs"} ({got["diff"]:.1e})'


def summary_line(row: dict, checks=CHECKS) -> str:
    cells = [f'{cell_key(how, size)}: {_cell(row.get(cell_key(how, size)))}'
             for how in checks if how != 'speed' for size in SIZES]
    sp = row.get('speed', {})
    if 'eager_ms' in sp:
        cells.append(f'eager {sp["eager_ms"]:.1f} ms, compiled {sp["compiled_ms"]:.1f} ms')
    return f'{row["arch"]}: ' + '; '.join(cells)


#: the hand-written part of docs/deployment.md (above the generated table)
GUIDE = """\
## Exporting and compiling a backbone

Every backbone is a plain `nn.Module` (build it from a config or the registry, load a checkpoint,
call `.eval()`), so the standard tools apply:

```python
import torch
from plugins.registry import MODELS

model = MODELS.build(dict(type='NAT', arch='mini')).eval()
x = torch.randn(1, 3, 800, 1216)
program = torch.export.export(model, (x, ))                           # one program per size
torch.onnx.export(model, (x, ), 'nat.onnx', dynamo=True)              # run it with onnxruntime
compiled = torch.compile(model)                                       # inductor
```

Shapes are static: export once per input size (the maps' padding and window tables depend on
it). Ops whose fast eager path cannot be recorded by a tracer take a traceable path with the
same numbers while a graph is traced (`plugins.ops.utils.graph_tracing`): neighborhood attention
(NAT, DiNAT, MixerFormer) its generic tiled path of plain tensor ops on index tables instead of
the banded kernel (a custom autograd function on strided views); the selective scan (SS2D of
Mamba-YOLO and the SS2D / LaMamba mixers) its chunk states by a doubling scan instead of a chunk
length chosen from the decays on the host; RaftMLP its bicubic resizes as products with resize
matrices (onnxruntime's default graph optimizations refuse to downscale with a cubic Resize in
their blocked layout). `torch.compile` runs the eager paths, the banded NA kernel and the scan's
chunk choice as graph breaks.

## On a GPU

The ops, every mixer of the benchmark and the backbones give the CPU's fp32 numbers on CUDA in
fp32 and under fp16 / bf16 autocast within the dtype's tolerance (`tests/test_devices.py`: the
CUDA cases run where a GPU is present; the CPU checks bf16 autocast). Routing decisions (BiFormer's
regions, k-means routing's members) are scored in fp32 also under autocast. Neighborhood attention
uses NATTEN's fused kernels (`natten.na2d`) on CUDA where natten is installed and the call has no
relative position bias (the NAT / DiNAT checkpoints have one: they keep the toolkit's path), and
the toolkit's paths otherwise; `plugins.ops.neighborhood.neighborhood_backend` tells which a call
takes. `bash benchmarks/gpu.sh` runs the mixer and backbone benchmarks on one GPU (about 8 minutes)
and writes `benchmarks/results/gpu.md`, the device named.
"""


def write_markdown(rows: List[dict], path: str, reasons: Dict[str, str]) -> None:
    sizes = ', '.join(f'{h}x{w}' for h, w in SIZES)
    lines = ['# Deployment: torch.compile, torch.export, ONNX', '',
             'Generated by `python tools/analysis/deployment_table.py` (`make docs`); do not '
             'edit by hand: the guide is the tool\'s `GUIDE`.', '', GUIDE,
             '## Every architecture', '',
             f'torch {torch.__version__}, CPU. Every architecture of '
             '`plugins/backbones/reference.yaml`, its small model (the contract test\'s: at '
             'most two blocks per stage), eval mode, batch 1, at ' + sizes + '. A cell: "ok" '
             f'when every output map equals eager within rtol = atol = {TOLERANCE:g} '
             '(the largest absolute difference in brackets), else the reason. export: '
             '`torch.export.export` (static shapes, one program per size); onnx: '
             '`torch.onnx.export(dynamo=True)` run by onnxruntime on the CPU (its default '
             'graph optimizations); compile: `torch.compile` (inductor). Speed: eager and '
             f'compiled ms at {SIZES[0][0]}x{SIZES[0][1]} (median of 5 alternating calls, one '
             'thread, process CPU time) and the compilation\'s wall time.', '']
    header = '| architecture | ' + ' | '.join(f'{how} {h}x{w}' for how in CHECKS
                                              for h, w in SIZES)
    lines += [header + ' | eager ms | compiled ms | speed-up | compile s |',
              '|---' * (1 + len(CHECKS) * len(SIZES) + 4) + '|']
    for row in rows:
        if 'note' in row:
            lines.append(f'| {row["arch"]} | ' + ' | '.join([row['note']] * (
                len(CHECKS) * len(SIZES) + 4)) + ' |')
            continue
        cells = [_cell(row.get(cell_key(how, size))).replace('|', '/') for how in CHECKS
                 for size in SIZES]
        sp = row.get('speed', {})
        if 'eager_ms' in sp:
            cells += [f'{sp["eager_ms"]:.1f}', f'{sp["compiled_ms"]:.1f}',
                      f'{sp["eager_ms"] / sp["compiled_ms"]:.2f}', f'{sp["compile_s"]:.0f}']
        else:
            cells += [sp.get('note', 'not run')] + ['-'] * 3
        lines.append(f'| {row["arch"]} | ' + ' | '.join(cells) + ' |')
    if reasons:
        lines += ['', '## Where a check cannot pass', '']
        lines += [f'- **{arch}**: {why}' for arch, why in sorted(reasons.items())]
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'deployment.md'),
                        help='markdown table; the raw results go beside it as .json, and a '
                             'partial run (--arch, --checks) updates them')
    parser.add_argument('--arch', default=None, help='comma-separated architectures (default all)')
    parser.add_argument('--checks', default=','.join(CHECKS),
                        help="of export, onnx, compile; 'speed' alone times compiled vs eager")
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checks = [c for c in args.checks.split(',') if c]
    rows = matrix(architectures(args.arch), checks)
    raw = osp.splitext(args.out)[0] + '.json'
    if osp.exists(raw):  # a partial re-run (--arch, --checks): keep the other results
        with open(raw) as f:
            rows = merge_rows(json.load(f), rows, architectures())
    with open(raw, 'w') as f:
        json.dump(rows, f, indent=1)
    write_markdown(rows, args.out, KNOWN_LIMITS)
    print(f'wrote {args.out} and {raw}')
    return rows


#: architecture -> why a check cannot pass (pinned by tests/test_deployment.py)
KNOWN_LIMITS: Dict[str, str] = {}


if __name__ == '__main__':
    main()
