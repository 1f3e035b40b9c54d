"""Mixer benchmark: every mixer beside its best peer and SDPA global attention, in one run.

For each case of ``benchmarks/mixer_cases/*.py`` and each token grid, the toolkit's mixer, its peer
(same weights, same input) and global attention (``GlobalSelfAttention`` on SDPA) are timed in the
same process, forward (no grad) and forward + backward (input and weight gradients), batch 1, fp32,
CPU. Reported: the median wall time over repeats (fewer repeats for slow calls) and the peak memory.

Peak memory: the largest amount of tensor memory alive at once during the call, beyond what existed
before it (inputs, weights): the torch profiler's allocation and free events, summed in time order.
It sees every tensor allocation of torch's CPU allocator, which does not cache, so it is the
tensors' footprint; it does not see Python objects or the allocator's fragmentation.

Usage:
    python -m benchmarks.mixers                # full run: writes benchmarks/results/mixers.{md,png}
    python -m benchmarks.mixers --quick        # smoke run on tiny grids
    python -m benchmarks.mixers --only Halo    # cases whose name contains a string
"""
import argparse
import importlib
import json
import itertools
import os
import pkgutil
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import mixer_cases  # noqa: E402
from benchmarks.mixer_cases import MixerCase  # noqa: E402

# (H, W, C): C = 64 from 28x28 to 200x304 (an 800x1216 image at stride 4); stride 8 / 16 maps of
# that image at C = 128 / 320
FULL_GRIDS = [(28, 28, 64), (56, 56, 64), (100, 152, 64), (200, 304, 64), (100, 152, 128),
              (50, 76, 320)]
QUICK_GRIDS = [(8, 8, 32), (12, 16, 32)]
HEAD_DIM = 32
GLOBAL = 'SDPA global'
MEMORY_MAX_S = 15.0
# a callable whose forward + backward, projected from its last grid (tokens^1 for local and
# linear cases, tokens^2 for quadratic ones, times the channel ratio), would exceed either limit
# is skipped on the larger grids and reported as skipped (a sequential-scan peer, for instance)
SKIP_ABOVE_S = 90.0
SKIP_ABOVE_MB = 5000.0


def collect_cases(only: Optional[str] = None) -> List[MixerCase]:
    cases = []
    for info in pkgutil.iter_modules(mixer_cases.__path__):
        if info.name.startswith('_'):
            continue
        module = importlib.import_module(f'benchmarks.mixer_cases.{info.name}')
        cases.extend(getattr(module, 'CASES', []))
    if only:
        cases = [c for c in cases if only.lower() in c.name.lower()]
    return cases


def _runner(fn: Callable, x: torch.Tensor, backward: bool, params) -> Callable[[], None]:
    grad = None

    def run():
        nonlocal grad
        if not backward:
            with torch.no_grad():
                fn(x)
            return
        xi = x.detach().requires_grad_(True)
        y = fn(xi)
        if grad is None:
            grad = torch.randn_like(y)
        y.backward(grad)
        for p in params:
            p.grad = None
    return run


def clock() -> float:
    """CPU time of this process when torch runs one thread (on a shared machine, wall time would
    also count other processes' time slices), wall time otherwise."""
    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def time_once(run: Callable[[], None]) -> float:
    """Seconds of one call of ``run`` on :func:`clock`."""
    t0 = clock()
    run()
    return clock() - t0


def repeats_within(budget_s: float, first_s: float, max_reps: int) -> int:
    """How many timed repeats fit ``budget_s`` after a first call of ``first_s`` (at least one,
    at most ``max_reps``; one where the first call alone exceeds the budget)."""
    return 1 if first_s > budget_s else max(1, min(max_reps, int(budget_s / max(first_s, 1e-6))))


def time_call(run: Callable[[], None], budget_s: float, max_reps: int = 5) -> float:
    """Median time (ms, see :func:`clock`): one warm-up, then up to ``max_reps`` repeats within
    about ``budget_s``; a call slower than ``budget_s`` is timed once more (no further repeats)."""
    reps = repeats_within(budget_s, time_once(run), max_reps)
    return statistics.median(time_once(run) for _ in range(reps)) * 1e3


def peak_memory(run: Callable[[], None]) -> Optional[float]:
    """Peak tensor memory (MB) alive during ``run`` beyond what existed before it, or None where
    the measurement failed. It runs in a forked child, so that no profiler state can touch the
    timings of this process (VAN-b0 at 224, one thread, fastest of 40 calls after / before a
    profile, three tries each: in-process profile 0.86-1.32x, mean 1.12; forked 0.89-1.14x,
    mean 1.01; the machine's noise is about +-15%)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report, exit without running the parent's cleanup
        os.close(read_end)
        try:
            torch.set_num_threads(1)  # the parent's thread pool does not survive fork
            os.write(write_end, repr(_profiled_peak_mb(run)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reply = pipe.read()
    os.waitpid(pid, 0)
    return float(reply) if reply else None


def _profiled_peak_mb(run: Callable[[], None]) -> float:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events())
    cum = itertools.accumulate(m for _, m in events)
    return max(0, max(cum, default=0)) / 2 ** 20


def measure(fn, x, params, budget_s, with_memory=True) -> Dict[str, Optional[float]]:
    res = {}
    for mode, backward in (('fwd', False), ('fwdbwd', True)):
        try:
            run = _runner(fn, x, backward, params)
            res[f'{mode}_ms'] = ms = time_call(run, budget_s)
            # the profiled run repeats the call: skip it for calls slower than MEMORY_MAX_S
            res[f'{mode}_mb'] = peak_memory(run) if with_memory and ms < MEMORY_MAX_S * 1e3 \
                else None
        except (RuntimeError, AssertionError, ValueError, MemoryError) as err:  # reported
            res[f'{mode}_ms'] = res[f'{mode}_mb'] = None
            res[f'{mode}_error'] = f'{type(err).__name__}: {str(err)[:80]}'
    return res


def _projected_skip(prev: Optional[dict], tokens: int, dim: int, scaling: str) -> Optional[str]:
    if not prev or (prev.get('fwdbwd_ms') is None and prev.get('fwd_ms') is None):
        return None
    grow = (tokens / prev['tokens']) ** (2 if scaling == 'quadratic' else 1) * dim / prev['dim']
    ms = (prev.get('fwdbwd_ms') or prev.get('fwd_ms')) * grow
    mb = (prev.get('fwdbwd_mb') or 0.0) * grow
    if ms > SKIP_ABOVE_S * 1e3 or mb > SKIP_ABOVE_MB:
        return (f'skipped: projected {ms / 1e3:.0f} s / {mb:.0f} MB from '
                f'{prev["grid"][0]}x{prev["grid"][1]} C={prev["dim"]}')
    return None


def _measure_or_skip(fn_builder, x, params, budget_s, prev, scaling):
    h, w = x.shape[2:]
    why = _projected_skip(prev, h * w, x.shape[1], scaling)
    if why:
        return dict(fwd_ms=None, fwdbwd_ms=None, fwd_mb=None, fwdbwd_mb=None, fwd_error=why,
                    skipped=why)
    try:
        fn, extra = fn_builder()
        r = measure(fn, x, params + extra, budget_s)
    except Exception as err:  # noqa: BLE001  (a callable that cannot run is reported)
        r = dict(fwd_ms=None, fwdbwd_ms=None, fwd_mb=None, fwdbwd_mb=None,
                 fwd_error=f'{type(err).__name__}: {str(err)[:80]}')
    return r


def run_benchmark(grids: List[Tuple[int, int, int]], only: Optional[str] = None,
                  budget_s: float = 3.0, log=print, exact: Optional[str] = None,
                  with_global: bool = True) -> List[dict]:
    from plugins.mixers.global_attention import GlobalSelfAttention
    cases = collect_cases(only)
    if exact is not None:
        cases = [c for c in cases if c.name == exact]
    rows = []
    last: Dict[tuple, dict] = {}  # (case, who) -> its latest measurement, for _projected_skip
    for h, w, c in grids:
        heads = max(1, c // HEAD_DIM)
        x = torch.randn(1, c, h, w)
        if with_global:
            torch.manual_seed(0)
            glob = GlobalSelfAttention(c, heads)
            g = measure(glob, x, list(glob.parameters()), budget_s)
            rows.append(dict(case=GLOBAL, paper='', grid=(h, w), dim=c, who='ours', **g))
            log(f'{h}x{w} C={c} {GLOBAL}: fwd {_fmt(g["fwd_ms"])} ms, '
                f'fwd+bwd {_fmt(g["fwdbwd_ms"])} ms')
        for case in cases:
            if case.max_tokens is not None and h * w > case.max_tokens:
                continue
            torch.manual_seed(0)
            try:
                ours = case.build(c, heads)
            except (ValueError, AssertionError) as err:
                log(f'  {case.name}: cannot build at C={c}: {err}')
                continue
            params = list(ours.parameters())
            key = (case.name, 'ours')
            r = _measure_or_skip(lambda: (ours, []), x, params, budget_s, last.get(key),
                                 case.scaling)
            if r.get('fwd_ms') is not None:  # project from the last call that ran
                last[key] = dict(r, tokens=h * w, dim=c, grid=(h, w))
            rows.append(dict(case=case.name, paper=case.paper, scaling=case.scaling, grid=(h, w),
                             dim=c, who='ours', **r))
            peer_txt = ''
            if case.build_peer is not None:
                def build_peer():
                    peer = case.build_peer(ours)
                    return peer, list(getattr(peer, 'parameters', list)())
                key = (case.name, 'peer')
                p = _measure_or_skip(build_peer, x, params, budget_s, last.get(key), case.scaling)
                if p.get('fwd_ms') is not None:
                    last[key] = dict(p, tokens=h * w, dim=c, grid=(h, w))
                rows.append(dict(case=case.name, paper=case.paper, scaling=case.scaling,
                                 grid=(h, w), dim=c, who='peer', peer=case.peer_name, **p))
                peer_txt = (f' | peer fwd {_fmt(p["fwd_ms"])} ms, '
                            f'fwd+bwd {_fmt(p["fwdbwd_ms"])} ms')
            log(f'  {h}x{w} C={c} {case.name}: fwd {_fmt(r["fwd_ms"])} ms, fwd+bwd {_fmt(r["fwdbwd_ms"])} ms'
                f'{peer_txt}')
    return rows


def run_isolated(grids, only, budget_s, threads, max_gb, log=print) -> List[dict]:
    """Each case (and global attention) in a subprocess of its own: a case that exhausts memory
    fails alone (its address space is capped at ``max_gb``) and leaves no fragmented heap
    behind for the next one."""
    import subprocess
    import tempfile
    names = [None] + [c.name for c in collect_cases(only)]
    rows = []
    for name in names:
        with tempfile.NamedTemporaryFile(suffix='.json') as tmp:
            cmd = [sys.executable, '-m', 'benchmarks.mixers', '--worker-out', tmp.name,
                   '--budget', str(budget_s), '--grids', ';'.join(f'{h}x{w}x{c}'
                                                                  for h, w, c in grids)]
            cmd += ['--worker-case', name] if name else ['--worker-global']
            if threads:
                cmd += ['--threads', str(threads)]
            if max_gb:
                cmd += ['--max-gb', str(max_gb)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                log(line)
            try:
                with open(tmp.name) as f:
                    got = [dict(r, grid=tuple(r['grid'])) for r in json.load(f)]
            except (OSError, ValueError):
                got = []
            if proc.returncode != 0 or not got:
                log(f'  {name or GLOBAL}: worker failed (exit {proc.returncode}): '
                    f'{proc.stderr.strip().splitlines()[-1:] }')
            rows.extend(got)
    return rows


def _fmt(v, digits=1):
    if v is None:
        return 'n/a'
    return f'{v:.{digits}f}' if v < 1000 else f'{v:.0f}'


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def write_markdown(rows: List[dict], path: str, note: str = '') -> None:
    by_key = {(r['case'], r['grid'], r['dim'], r['who']): r for r in rows}
    glob = {(r['grid'], r['dim']): r for r in rows if r['case'] == GLOBAL}
    cases = list(dict.fromkeys(r['case'] for r in rows if r['case'] != GLOBAL))
    lines = ['# Mixer benchmark (CPU, fp32, batch 1)', '',
             'Generated by `python -m benchmarks.mixers`; do not edit by hand.', '',
             f'torch {torch.__version__}, {torch.get_num_threads()} thread(s). Time: median in ms '
             '(process CPU time with one thread, so that other processes on a shared machine do '
             'not count; wall time otherwise); memory: peak tensor memory alive during the call beyond inputs and '
             'weights (torch profiler allocation events), MB. fwd+bwd computes input and weight '
             'gradients. "vs peer" = peer time / our time for fwd+bwd (> 1: we are faster); '
             '"vs global" = global-attention fwd time / our fwd time.', '']
    if note:
        lines += [note, '']
    rerun = sorted({r['case'] for r in rows if r.get('rerun')})
    if rerun:
        lines += ['Measured in a later run than the rest (same settings): ' + ', '.join(rerun)
                  + '.', '']
    lines += ['| mixer | grid | C | fwd ms | fwd+bwd ms | peak MB (fwd+bwd) | peer | peer fwd ms | '
              'peer fwd+bwd ms | peer peak MB | vs peer | vs global (fwd) |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for case in cases:
        for (grid, dim) in glob:
            ours = by_key.get((case, grid, dim, 'ours'))
            if ours is None:
                continue
            peer = by_key.get((case, grid, dim, 'peer'), {})
            g = glob[(grid, dim)]
            lines.append('| {} | {}x{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |'.format(
                case, grid[0], grid[1], dim, _fmt(ours['fwd_ms']), _fmt(ours['fwdbwd_ms']),
                _fmt(ours['fwdbwd_mb']), peer.get('peer', '-') or '-', _fmt(peer.get('fwd_ms')),
                _fmt(peer.get('fwdbwd_ms')), _fmt(peer.get('fwdbwd_mb')),
                _fmt(_ratio(peer.get('fwdbwd_ms'), ours['fwdbwd_ms']), 2),
                _fmt(_ratio(g['fwd_ms'], ours['fwd_ms']), 1)))
    for (grid, dim), g in glob.items():
        lines.append(f'| {GLOBAL} | {grid[0]}x{grid[1]} | {dim} | {_fmt(g["fwd_ms"])} | '
                     f'{_fmt(g["fwdbwd_ms"])} | {_fmt(g["fwdbwd_mb"])} | - | - | - | - | - | 1.0 |')
    lines += ['', '## Scaling (C = 64): time at 200x304 / time at 100x152 (4x tokens)', '',
              '| mixer | scaling class | fwd | fwd+bwd |', '|---|---|---|---|']
    for case in cases + [GLOBAL]:
        a = by_key.get((case, (100, 152), 64, 'ours'))
        b = by_key.get((case, (200, 304), 64, 'ours'))
        if a and b:
            lines.append(f'| {case} | {a.get("scaling", "quadratic")} | '
                         f'{_fmt(_ratio(b["fwd_ms"], a["fwd_ms"]), 2)} | '
                         f'{_fmt(_ratio(b["fwdbwd_ms"], a["fwdbwd_ms"]), 2)} |')
    errors = [r for r in rows if r.get('fwd_error') or r.get('fwdbwd_error')]
    if errors:
        lines += ['', '## Calls that failed', '']
        for r in errors:
            lines.append(f'- {r["case"]} ({r["who"]}) {r["grid"][0]}x{r["grid"][1]} C={r["dim"]}: '
                         f'{r.get("fwd_error") or r.get("fwdbwd_error")}')
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plot(rows: List[dict], path: str, dim: int = 64) -> bool:
    """Log-log plot of forward time against tokens at ``dim`` channels; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, key, title in ((axes[0], 'fwd_ms', 'forward'), (axes[1], 'fwdbwd_ms',
                                                            'forward + backward')):
        for who, style in (('ours', '-o'), ('peer', ':x')):
            series = {}
            for r in rows:
                if r['dim'] == dim and r['who'] == who and r.get(key):
                    series.setdefault(r['case'], []).append((r['grid'][0] * r['grid'][1], r[key]))
            for case, pts in series.items():
                pts.sort()
                label = case if who == 'ours' else f'peer of {case}'
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label,
                        linewidth=2.2 if case == GLOBAL else 1.2, markersize=4)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('tokens (H x W)')
        ax.set_ylabel('ms')
        ax.set_title(f'{title}, C = {dim}, CPU fp32')
        ax.grid(True, which='both', alpha=0.3)
    axes[1].legend(fontsize=6, loc='upper left', ncol=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='tiny grids, one repeat')
    parser.add_argument('--only', default=None, help='cases whose name contains this')
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results'))
    parser.add_argument('--budget', type=float, default=3.0, help='seconds per measurement')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--isolate', action='store_true',
                        help='run each case in a subprocess of its own (the full run does)')
    parser.add_argument('--grids', default=None, help='e.g. "28x28x64;56x56x64"')
    parser.add_argument('--worker-out', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--worker-case', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--worker-global', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--max-gb', type=float, default=None,
                        help='address-space limit: a call that would exceed it fails with an '
                             'allocation error (reported) instead of the process being killed')
    args = parser.parse_args(argv)
    if args.max_gb:
        import resource
        limit = int(args.max_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.threads:
        torch.set_num_threads(args.threads)
    grids = QUICK_GRIDS if args.quick else FULL_GRIDS
    if args.grids:
        grids = [tuple(int(v) for v in g.split('x')) for g in args.grids.split(';')]
    budget = 0.05 if args.quick else args.budget
    if args.worker_out:  # one case (or global attention) for run_isolated
        rows = run_benchmark(grids, None, budget, exact=args.worker_case or '\0',
                             with_global=args.worker_global)
        with open(args.worker_out, 'w') as f:
            json.dump(rows, f)
        return rows
    if args.isolate:
        rows = run_isolated(grids, args.only, budget, args.threads, args.max_gb)
    else:
        rows = run_benchmark(grids, args.only, budget)
    name = 'mixers_quick' if args.quick else 'mixers'
    os.makedirs(args.out, exist_ok=True)
    raw = os.path.join(args.out, f'{name}.json')
    if args.only and os.path.exists(raw):  # re-run of some cases: keep the others' rows
        with open(raw) as f:
            kept = [dict(r, grid=tuple(r['grid'])) for r in json.load(f)]
        fresh = {r['case'] for r in rows} - {GLOBAL}  # global attention: the full run's rows
        rows = [r for r in kept if r['case'] not in fresh] + \
            [dict(r, rerun=True) for r in rows if r['case'] in fresh]
    with open(raw, 'w') as f:
        json.dump(rows, f, indent=0)
    md = os.path.join(args.out, f'{name}.md')
    write_markdown(rows, md)
    png = os.path.join(args.out, f'{name}.png')
    plotted = write_plot(rows, png, dim=grids[0][2])
    print(f'wrote {md}' + (f' and {png}' if plotted else ''))
    return rows


if __name__ == '__main__':
    main()
