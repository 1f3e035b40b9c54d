"""Mixer benchmark: every mixer beside its best peer, SDPA global attention and the machine's limit.

For each case of ``benchmarks/mixer_cases/*.py`` and each token grid (the grids below, plus the
case's own ``grids``), the toolkit's mixer and its peer (same weights, same input) run forward (no
grad) and forward + backward (input and weight gradients), batch 1, fp32, CPU, in the same
process, their timed calls alternating (ours, peer, ours, ...: at least 5 each, after two warm-up
calls each), so that a drift of the machine's speed weighs on both alike; global attention
(``GlobalSelfAttention`` on SDPA) runs at every grid too. Reported: the median time and the peak
memory of each.

Against the limit: the "ideal" time of a call is its useful multiply-adds divided by this
machine's matrix-multiply rate, measured in the same process just before the case at each grid
(a 2048 x 2048 fp32 GEMM, same threads). Useful multiply-adds are those of
``plugins/utils/flops.py`` (the papers' count, as in the FLOPs tables: for attention the
query-key and attention-value products each query needs, plus the projections); the backward
counts twice the forward (the input and the weight gradient of every product). "x ideal" =
our time / ideal time.

Clock: process CPU time with one thread (the default: other processes on a shared machine then
do not count), wall time with more. glibc's allocator is told to keep freed memory for reuse
(``M_MMAP_MAX = 0``, trimming off), as a caching allocator (jemalloc, tcmalloc) would: otherwise
every call's large buffers are fresh mappings whose page faults (kernel time, 1-2 us per 4 KB)
swamp the arithmetic, differently for each mixer and grid; ``--system-allocator`` turns it off.

Peak memory: the largest amount of tensor memory alive at once during the call, beyond what
existed before it (inputs, weights): the torch profiler's raw allocation and free events
(``[memory]``), summed in time order, in a forked child. It sees every tensor allocation of
torch's CPU allocator, which does not cache, including those made inside Python-level autograd
functions and their backward (which operator-level memory attributes to the function's start and
misses); it does not see Python objects or the allocator's fragmentation.

Usage:
    python -m benchmarks.mixers --isolate      # full run: writes benchmarks/results/mixers.{md,png}
    python -m benchmarks.mixers --quick        # smoke run on tiny grids
    python -m benchmarks.mixers --only Halo    # cases whose name contains a string
    python -m benchmarks.mixers --device cuda --grids '56x56x64' --out DIR   # on a GPU

On a GPU (``--device cuda``) the clock is wall time around synchronised calls and the peak
memory is the CUDA allocator's peak (``torch.cuda.max_memory_allocated``) during the call beyond
what was allocated before it.
"""
import argparse
import ctypes
import ctypes.util
import importlib
import itertools
import json
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
MIN_REPS, MAX_REPS = 5, 15
LONG_S = 40.0  # a call whose MIN_REPS repeats would take longer repeats fewer times
WARMUP = 2
BACKWARD_FACTOR = 3  # forward + backward multiply-adds per forward multiply-add
GEMM_SIZE = 2048
# a callable whose forward + backward, projected from its last grid (tokens^1 for local and
# linear cases, tokens^2 for quadratic ones, times the channel ratio), would exceed either limit
# is skipped on the larger grids and reported as skipped (a sequential-scan peer, for instance)
SKIP_ABOVE_S = 90.0
SKIP_ABOVE_MB = 5000.0
#: where the models and inputs live (``--device``; :func:`set_device`)
DEVICE = torch.device('cpu')


def set_device(name: str) -> torch.device:
    """Run the benchmark on ``name`` (``cpu``, ``cuda``, ``cuda:1``); a clear error where that
    device is absent."""
    global DEVICE
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {name}: torch {torch.__version__} sees no CUDA device here; '
                         'run on a machine with a GPU or use --device cpu')
    if device.type not in ('cpu', 'cuda'):
        raise SystemExit(f'--device {name}: only cpu and cuda are supported')
    DEVICE = device
    return device


def synchronize() -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if DEVICE.type == 'cuda':
        torch.cuda.synchronize(DEVICE)


def device_name() -> str:
    """The benchmark device in words, e.g. ``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu``."""
    if DEVICE.type == 'cuda':
        return f'{DEVICE} ({torch.cuda.get_device_name(DEVICE)})'
    return 'cpu'


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


def settle_allocator() -> bool:
    """Have glibc's malloc reuse freed memory instead of returning it to the system (no mmap
    for large blocks, no trimming), as a caching allocator does; False where there is no glibc.
    Process-wide, for benchmark processes only."""
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        # trim threshold -1: never trim (mallopt(3)). The largest positive value, 2 GB, let the
        # first free after a peer's call of more than 2 GB hand its memory back to the system,
        # and whichever call made that free paid the kernel's unmapping: NA at 200x304 C=64,
        # fwd+bwd after the gather peer's 2.3 GB, 506 ms (192 ms system time) vs 292 ms
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, -1))
    except (OSError, AttributeError, TypeError):
        return False


def clock() -> float:
    """CPU time of this process when torch runs one thread (on a shared machine, wall time would
    also count other processes' time slices), wall time otherwise."""
    if DEVICE.type != 'cpu':
        return time.perf_counter()
    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def time_once(run: Callable[[], None]) -> float:
    """Seconds of one call of ``run`` on :func:`clock` (the device's work included)."""
    synchronize()
    t0 = clock()
    run()
    synchronize()
    return clock() - t0


def time_call(run: Callable[[], None], budget_s: float, max_reps: int = 5) -> float:
    """Median ms of ``run`` alone (:func:`clock`): one warm-up, then up to ``max_reps`` repeats
    within about ``budget_s``; a call slower than ``budget_s`` is timed once more."""
    reps = repeats_within(budget_s, time_once(run), max_reps)
    return statistics.median(time_once(run) for _ in range(reps)) * 1e3


def matmul_rate(size: int = GEMM_SIZE, repeats: int = 3) -> float:
    """Multiply-adds per second of a ``size x size`` fp32 matrix product (best of ``repeats``),
    on :func:`clock` with the current threads: the machine's limit the "ideal" times divide by."""
    a, b = torch.randn(size, size, device=DEVICE), torch.randn(size, size, device=DEVICE)
    torch.mm(a, b)
    return size ** 3 / min(time_once(lambda: torch.mm(a, b)) for _ in range(repeats))


def useful_macs(module: torch.nn.Module, x: torch.Tensor) -> Optional[int]:
    """Multiply-adds of ``module(x)`` as the papers count them (``plugins/utils/flops.py``), or
    None where the analyser cannot trace the module."""
    from plugins.utils.flops import count_flops
    try:
        with torch.no_grad():
            return count_flops(module, (x, ))
    except Exception:  # noqa: BLE001  (a module the tracer cannot follow has no ideal)
        return None


def repeats_within(budget_s: float, first_s: float, max_reps: int) -> int:
    """How many timed repeats fit ``budget_s`` after a first call of ``first_s`` (at least one,
    at most ``max_reps``; one where the first call alone exceeds the budget)."""
    return 1 if first_s > budget_s else max(1, min(max_reps, int(budget_s / max(first_s, 1e-6))))


def alternating_reps(budget_s: float, slowest_s: float) -> int:
    """Timed repeats per callable: ``MIN_REPS`` .. ``MAX_REPS`` within ``budget_s``; fewer only
    where ``MIN_REPS`` calls of the slowest would take longer than ``LONG_S``."""
    if slowest_s * MIN_REPS > LONG_S:
        return max(1, int(LONG_S / max(slowest_s, 1e-6)))
    return max(MIN_REPS, min(MAX_REPS, int(budget_s / max(slowest_s, 1e-6))))


def time_alternating(runs: Dict[str, Callable[[], None]], budget_s: float,
                     warmup: int = WARMUP) -> Tuple[Dict[str, float], Dict[str, str], int]:
    """Median ms of each callable, their timed calls alternating in rounds (``runs`` order);
    ``(times, errors, repeats)``. A callable that fails (in its warm-up, or later: an allocation
    the heap can no longer serve) is reported in ``errors`` and left out of the rounds."""
    first, errors = {}, {}
    for who, run in runs.items():
        try:
            for _ in range(warmup):
                first[who] = time_once(run)
        except (RuntimeError, AssertionError, ValueError, MemoryError) as err:
            errors[who] = f'{type(err).__name__}: {str(err)[:80]}'
    live = {who: run for who, run in runs.items() if who in first}
    reps = alternating_reps(budget_s, max(first.values(), default=0.))
    times = {who: [] for who in live}
    for _ in range(reps):
        for who, run in list(live.items()):
            try:
                times[who].append(time_once(run))
            except (RuntimeError, MemoryError) as err:
                errors[who] = f'{type(err).__name__}: {str(err)[:80]}'
                del live[who], times[who]
    return {who: statistics.median(t) * 1e3 for who, t in times.items()}, errors, reps


def peak_memory(run: Callable[[], None]) -> Optional[float]:
    """Peak tensor memory (MB) alive during ``run`` beyond what existed before it, or None where
    the measurement failed. It runs in a forked child, so that no profiler state can touch the
    timings of this process (VAN-b0 at 224, one thread, fastest of 40 calls after / before a
    profile, three tries each: in-process profile 0.86-1.32x, mean 1.12; forked 0.89-1.14x,
    mean 1.01; the machine's noise is about +-15%). On CUDA: the allocator's peak."""
    if DEVICE.type == 'cuda':
        return cuda_peak_mb(run)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report, exit without running the parent's cleanup
        os.close(read_end)
        try:
            torch.set_num_threads(1)  # the parent's thread pool does not survive fork
            os.write(write_end, repr(profiled_peak_mb(run)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reply = pipe.read()
    os.waitpid(pid, 0)
    return float(reply) if reply else None


def cuda_peak_mb(run: Callable[[], None]) -> float:
    """Peak CUDA tensor memory (MB) allocated during ``run()`` beyond what was allocated
    before it."""
    synchronize()
    torch.cuda.reset_peak_memory_stats(DEVICE)
    before = torch.cuda.memory_allocated(DEVICE)
    run()
    synchronize()
    return max(0, torch.cuda.max_memory_allocated(DEVICE) - before) / 2 ** 20


def profiled_peak_mb(run: Callable[[], None]) -> float:
    """Peak tensor memory (MB) alive during ``run()`` beyond what existed before it, from the
    profiler's raw ``[memory]`` events (every allocation and free with its time). Operator-level
    memory (``self_cpu_memory_usage``) books the frees made inside a Python-level autograd
    function at the function's start and misses the peak within it (neighborhood attention's
    forward + backward at 100x152, C = 64: 39.8 MB operator-level, 72.4 MB from the raw
    events)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]')
    return max(0, max(itertools.accumulate(n for _, n in events), default=0)) / 2 ** 20


def held_parameters(fn: Callable) -> List[torch.Tensor]:
    """The parameters a peer holds: a module's own, or those of the modules a closure captures
    (timm modules built inside ``build_peer``), recursively. Their gradients are reset after each
    call as ours are: a gradient left from the warm-up would make the peer's next backward add
    into it in place instead of allocating it, hiding the weight gradients from its peak memory
    (timm ViT ``Attention`` at 50x76, C = 320: 0.39 MB, the ``proj`` gradient)."""
    found, seen = {}, set()

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found.update((id(p), p) for p in obj.parameters())
        elif isinstance(obj, torch.Tensor):
            if obj.requires_grad and obj.is_leaf:
                found[id(obj)] = obj
        elif callable(obj):
            for cell in getattr(obj, '__closure__', None) or ():
                try:
                    visit(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            if hasattr(obj, '__self__'):
                visit(obj.__self__)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
    visit(fn)
    return list(found.values())


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


def measure(fns: Dict[str, Tuple[Callable, list]], x: torch.Tensor, budget_s: float,
            with_memory: bool = True) -> Dict[str, dict]:
    """``{who: row fields}`` of callables ``{who: (fn, params)}`` on ``x``: forward and
    forward + backward times (alternating between the callables) and peak memory."""
    res = {who: {} for who in fns}
    for mode, backward in (('fwd', False), ('fwdbwd', True)):
        runs = {who: _runner(fn, x, backward, params) for who, (fn, params) in fns.items()}
        times, errors, reps = time_alternating(runs, budget_s)
        for who in fns:
            r = res[who]
            r[f'{mode}_ms'] = times.get(who)
            r[f'{mode}_reps'] = reps if who in times else 0
            if who in errors:
                r[f'{mode}_error'] = errors[who]
            # the profiled run repeats the call: skipped for calls slower than MEMORY_MAX_S
            ms = times.get(who)
            r[f'{mode}_mb'] = peak_memory(runs[who]) if with_memory and ms is not None and \
                ms < MEMORY_MAX_S * 1e3 else None
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


def _empty(why: str) -> dict:
    return dict(fwd_ms=None, fwdbwd_ms=None, fwd_mb=None, fwdbwd_mb=None, fwd_error=why)


def _with_ideal(row: dict, macs: Optional[int], rate: float, gemm_size: int) -> dict:
    """Add the ideal times and our times in units of them to a row of ours."""
    row.update(macs=macs, gemm_rate=rate, gemm_size=gemm_size)
    if macs:
        ideal = macs / rate * 1e3
        row['ideal_fwd_ms'] = ideal
        row['fwd_x_ideal'] = row['fwd_ms'] / ideal if row.get('fwd_ms') else None
        row['fwdbwd_x_ideal'] = (row['fwdbwd_ms'] / (BACKWARD_FACTOR * ideal)
                                 if row.get('fwdbwd_ms') else None)
    return row


def case_grids(case: MixerCase, grids: List[Tuple[int, int, int]], full: bool):
    """The run's grids a case takes (up to its ``max_tokens``), then its own extra ``grids``
    (full runs only)."""
    own = [g for g in case.grids if g not in grids] if full else []
    return [g for g in grids + own if case.max_tokens is None or g[0] * g[1] <= case.max_tokens]


def run_case(case: MixerCase, grids, budget_s: float, full: bool, log=print,
             gemm_size: int = GEMM_SIZE) -> List[dict]:
    """Rows of one case (ours and its peer) at every grid it takes."""
    rows = []
    last: Dict[str, dict] = {}  # who -> its latest measurement, for _projected_skip
    for h, w, c in case_grids(case, grids, full):
        heads = max(1, c // HEAD_DIM)
        x = torch.randn(1, c, h, w, device=DEVICE)
        torch.manual_seed(0)
        try:
            ours = case.build(c, heads).to(DEVICE)
        except (ValueError, AssertionError) as err:
            log(f'  {case.name}: cannot build at C={c}: {err}')
            continue
        params = list(ours.parameters())
        fns, got = {}, {}
        for who in ('ours', 'peer') if case.build_peer is not None else ('ours', ):
            scaling = case.peer_scaling if who == 'peer' and case.peer_scaling else case.scaling
            why = _projected_skip(last.get(who), h * w, c, scaling)
            if why:
                got[who] = dict(_empty(why), skipped=why)
                continue
            try:
                if who == 'ours':
                    fns[who] = (ours, params)
                else:
                    peer = case.build_peer(ours)
                    if isinstance(peer, torch.nn.Module):
                        peer = peer.to(DEVICE)
                    fns[who] = (peer, params + held_parameters(peer))
            except Exception as err:  # noqa: BLE001  (a peer that cannot be built is reported)
                got[who] = _empty(f'{type(err).__name__}: {str(err)[:80]}')
        rate = matmul_rate(gemm_size)
        got.update(measure(fns, x, budget_s))
        macs = useful_macs(ours, x)
        for who, r in got.items():
            if r.get('fwd_ms') is not None:  # project from the last call that ran
                last[who] = dict(r, tokens=h * w, dim=c, grid=(h, w))
            row = dict(case=case.name, paper=case.paper, scaling=case.scaling, grid=(h, w),
                       dim=c, who=who, **r)
            if who == 'peer':
                row['peer'] = case.peer_name
            else:
                _with_ideal(row, macs, rate, gemm_size)
            rows.append(row)
        ours_row, peer_row = got['ours'], got.get('peer')
        peer_txt = '' if peer_row is None else \
            f' | peer fwd {_fmt(peer_row["fwd_ms"])} ms, fwd+bwd {_fmt(peer_row["fwdbwd_ms"])} ms'
        ideal = next(r for r in rows[::-1] if r['who'] == 'ours')
        log(f'  {h}x{w} C={c} {case.name}: fwd {_fmt(ours_row["fwd_ms"])} ms '
            f'(x{_fmt(ideal.get("fwd_x_ideal"), 2)} ideal), fwd+bwd '
            f'{_fmt(ours_row["fwdbwd_ms"])} ms (x{_fmt(ideal.get("fwdbwd_x_ideal"), 2)})'
            f'{peer_txt}', flush=True)
    return rows


def run_global(grids, budget_s: float, log=print, gemm_size: int = GEMM_SIZE) -> List[dict]:
    """Rows of SDPA global attention at every grid."""
    from plugins.mixers.global_attention import GlobalSelfAttention
    rows = []
    for h, w, c in grids:
        torch.manual_seed(0)
        glob = GlobalSelfAttention(c, max(1, c // HEAD_DIM)).to(DEVICE)
        x = torch.randn(1, c, h, w, device=DEVICE)
        rate = matmul_rate(gemm_size)
        g = measure({'ours': (glob, list(glob.parameters()))}, x, budget_s)['ours']
        rows.append(_with_ideal(dict(case=GLOBAL, paper='', grid=(h, w), dim=c, who='ours',
                                     **g), useful_macs(glob, x), rate, gemm_size))
        log(f'{h}x{w} C={c} {GLOBAL}: fwd {_fmt(g["fwd_ms"])} ms, '
            f'fwd+bwd {_fmt(g["fwdbwd_ms"])} ms', flush=True)
    return rows


def run_benchmark(grids: List[Tuple[int, int, int]], only: Optional[str] = None,
                  budget_s: float = 5.0, log=print, exact: Optional[str] = None,
                  with_global: bool = True, full: bool = False,
                  gemm_size: int = GEMM_SIZE) -> List[dict]:
    cases = collect_cases(only)
    if exact is not None:
        cases = [c for c in cases if c.name == exact]
    rows = run_global(grids, budget_s, log, gemm_size) if with_global else []
    for case in cases:
        rows += run_case(case, grids, budget_s, full, log, gemm_size)
    return rows


def run_isolated(grids, only, budget_s, threads, max_gb, full, log=print,
                 system_allocator: bool = False, device: str = 'cpu',
                 with_global: bool = True) -> List[dict]:
    """Each case (and global attention) in a subprocess of its own: a case that exhausts memory
    fails alone (its address space is capped at ``max_gb``) and leaves no fragmented heap
    behind for the next one."""
    import subprocess
    import tempfile
    names = ([None] if with_global else []) + [c.name for c in collect_cases(only)]
    rows = []
    for name in names:
        with tempfile.NamedTemporaryFile(suffix='.json') as tmp:
            cmd = [sys.executable, '-m', 'benchmarks.mixers', '--worker-out', tmp.name,
                   '--budget', str(budget_s), '--grids', ';'.join(f'{h}x{w}x{c}'
                                                                  for h, w, c in grids)]
            cmd += ['--worker-case', name] if name else ['--worker-global']
            cmd += ['--threads', str(threads), '--device', device,
                    '--max-call-s', str(SKIP_ABOVE_S)]
            if max_gb:
                cmd += ['--max-gb', str(max_gb)]
            if full:
                cmd += ['--worker-full']
            if system_allocator:
                cmd += ['--system-allocator']
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


def _merge_key(row):
    return row['case'], tuple(row['grid']), row['dim']


def _grid_key(row):
    return (row['grid'][0] * row['grid'][1] * row['dim'], row['grid'], row['dim'])


def write_markdown(rows: List[dict], path: str, note: str = '') -> None:
    by_key = {(r['case'], r['grid'], r['dim'], r['who']): r for r in rows}
    glob = {(r['grid'], r['dim']): r for r in rows if r['case'] == GLOBAL}
    cases = list(dict.fromkeys(r['case'] for r in rows if r['case'] != GLOBAL))
    threads = rows[0].get('threads', torch.get_num_threads()) if rows else 1
    device = rows[0].get('device', 'cpu') if rows else 'cpu'
    on_cpu = device == 'cpu'
    rates = [r['gemm_rate'] for r in rows if r.get('gemm_rate')]
    size = next((r['gemm_size'] for r in rows if r.get('gemm_size')), GEMM_SIZE)
    rate_txt = (f' The {size}x{size} GEMM ran at {min(rates) / 1e9:.0f}-'
                f'{max(rates) / 1e9:.0f} G multiply-adds/s over the run.') if rates else ''
    clock_txt = ('process CPU time with one thread, so that other processes on a shared machine '
                 'do not count; wall time otherwise' if on_cpu else
                 'wall time around synchronised calls')
    memory_txt = ('the profiler\'s raw allocation events' if on_cpu else
                  'the CUDA allocator\'s peak')
    lines = [f'# Mixer benchmark ({"CPU" if on_cpu else device}, fp32, batch 1)', '',
             'Generated by `python -m benchmarks.mixers`; do not edit by hand.', '',
             f'torch {torch.__version__}, {threads} thread(s), device {device}. Time: median in '
             f'ms over at least {MIN_REPS} calls of ours and of the peer alternating '
             f'({clock_txt}); memory: peak tensor memory alive during the call beyond inputs '
             f'and weights ({memory_txt}), MB. fwd+bwd computes input and '
             'weight gradients. "vs peer" = peer time / our time for fwd+bwd (> 1: we are '
             'faster); "vs global" = global-attention fwd time / our fwd time. MMAC: useful '
             'multiply-adds of the forward (`plugins/utils/flops.py`); "x ideal" = our time / '
             '(multiply-adds / the matrix-multiply rate measured in the same process at that '
             f'grid), forward + backward counting {BACKWARD_FACTOR}x the forward\'s '
             f'multiply-adds.{rate_txt}', '']
    if note:
        lines += [note, '']
    rerun = sorted({r['case'] for r in rows if r.get('rerun')})
    if rerun:
        lines += ['Measured in a later run than the rest (same settings): ' + ', '.join(rerun)
                  + '.', '']
    lines += ['| mixer | grid | C | fwd ms | fwd+bwd ms | peak MB (fwd+bwd) | MMAC | x ideal fwd | '
              'x ideal fwd+bwd | peer | peer fwd ms | peer fwd+bwd ms | peer peak MB | vs peer | '
              'vs global (fwd) |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for case in cases:
        mine = sorted((r for r in rows if r['case'] == case and r['who'] == 'ours'),
                      key=_grid_key)
        for ours in mine:
            grid, dim = ours['grid'], ours['dim']
            peer = by_key.get((case, grid, dim, 'peer'), {})
            g = glob.get((grid, dim), {})
            macs = ours.get('macs')
            lines.append('| {} | {}x{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |'
                         .format(case, grid[0], grid[1], dim, _fmt(ours['fwd_ms']),
                                 _fmt(ours['fwdbwd_ms']), _fmt(ours['fwdbwd_mb']),
                                 _fmt(macs / 1e6 if macs else None, 0),
                                 _fmt(ours.get('fwd_x_ideal'), 2),
                                 _fmt(ours.get('fwdbwd_x_ideal'), 2),
                                 peer.get('peer', '-') or '-', _fmt(peer.get('fwd_ms')),
                                 _fmt(peer.get('fwdbwd_ms')), _fmt(peer.get('fwdbwd_mb')),
                                 _fmt(_ratio(peer.get('fwdbwd_ms'), ours['fwdbwd_ms']), 2),
                                 _fmt(_ratio(g.get('fwd_ms'), ours['fwd_ms']), 1)))
    for g in sorted(glob.values(), key=_grid_key):
        grid, dim, macs = g['grid'], g['dim'], g.get('macs')
        lines.append(f'| {GLOBAL} | {grid[0]}x{grid[1]} | {dim} | {_fmt(g["fwd_ms"])} | '
                     f'{_fmt(g["fwdbwd_ms"])} | {_fmt(g["fwdbwd_mb"])} | '
                     f'{_fmt(macs / 1e6 if macs else None, 0)} | '
                     f'{_fmt(g.get("fwd_x_ideal"), 2)} | {_fmt(g.get("fwdbwd_x_ideal"), 2)} | '
                     '- | - | - | - | - | 1.0 |')
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
    """Log-log plots against tokens at ``dim`` channels: forward and forward + backward time
    (ours and peers), and our times in units of the ideal; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(14, 11))
    panels = [(axes[0, 0], 'fwd_ms', 'forward', 'ms', ('ours', 'peer')),
              (axes[0, 1], 'fwdbwd_ms', 'forward + backward', 'ms', ('ours', 'peer')),
              (axes[1, 0], 'fwd_x_ideal', 'forward / ideal', 'x ideal', ('ours', )),
              (axes[1, 1], 'fwdbwd_x_ideal', 'forward + backward / ideal', 'x ideal',
               ('ours', ))]
    for ax, key, title, unit, whos in panels:
        for who, style in (('ours', '-o'), ('peer', ':x')):
            if who not in whos:
                continue
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
        ax.set_ylabel(unit)
        ax.set_title(f'{title}, C = {dim}, {DEVICE.type.upper()} fp32')
        ax.grid(True, which='both', alpha=0.3)
    axes[0, 1].legend(fontsize=6, loc='upper left', ncol=1)
    axes[1, 1].legend(fontsize=6, loc='upper left', ncol=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    global SKIP_ABOVE_S
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='tiny grids, short budget')
    parser.add_argument('--only', default=None, help='cases whose name contains this')
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results'))
    parser.add_argument('--budget', type=float, default=5.0,
                        help='seconds of timed repeats per measurement (at least 5 repeats each)')
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda[:N]')
    parser.add_argument('--max-call-s', type=float, default=SKIP_ABOVE_S,
                        help='skip a call whose fwd+bwd, projected from its last grid, would '
                             'take longer (seconds)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1: process CPU time is the clock)')
    parser.add_argument('--isolate', action='store_true',
                        help='run each case in a subprocess of its own (the full run does)')
    parser.add_argument('--grids', default=None, help='e.g. "28x28x64;56x56x64"')
    parser.add_argument('--system-allocator', action='store_true',
                        help="leave glibc's malloc as it is (freed large blocks go back to the "
                             'system; every call then page-faults its buffers in)')
    parser.add_argument('--worker-out', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--worker-case', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--worker-global', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--worker-full', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--max-gb', type=float, default=None,
                        help='address-space limit: a call that would exceed it fails with an '
                             'allocation error (reported) instead of the process being killed')
    args = parser.parse_args(argv)
    if args.max_gb:
        import resource
        limit = int(args.max_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if not args.system_allocator:
        settle_allocator()
    torch.set_num_threads(args.threads)
    set_device(args.device)
    SKIP_ABOVE_S = args.max_call_s
    grids = QUICK_GRIDS if args.quick else FULL_GRIDS
    full = not args.quick and not args.grids
    if args.grids:
        grids = [tuple(int(v) for v in g.split('x')) for g in args.grids.split(';')]
    budget = 0.05 if args.quick else args.budget
    gemm = 256 if args.quick else GEMM_SIZE
    if args.worker_out:  # one case (or global attention) for run_isolated
        rows = run_benchmark(grids, None, budget, exact=args.worker_case or '\0',
                             with_global=args.worker_global, full=args.worker_full,
                             gemm_size=gemm)
        with open(args.worker_out, 'w') as f:
            json.dump([dict(r, threads=args.threads, device=device_name()) for r in rows], f)
        return rows
    name = 'mixers_quick' if args.quick else 'mixers'
    raw = os.path.join(args.out, f'{name}.json')
    kept = None  # a re-run of some cases merges into the file's rows
    if args.only and os.path.exists(raw):
        with open(raw) as f:
            kept = [dict(r, grid=tuple(r['grid'])) for r in json.load(f)]
    # the merge keeps the file's global-attention rows: a re-run does not measure them again
    with_global = not (kept and any(r['case'] == GLOBAL for r in kept))
    if args.isolate:
        rows = run_isolated(grids, args.only, budget, args.threads, args.max_gb, full,
                            system_allocator=args.system_allocator, device=args.device,
                            with_global=with_global)
    else:
        rows = run_benchmark(grids, args.only, budget, full=full, gemm_size=gemm,
                             with_global=with_global)
    rows = [dict(r, threads=args.threads, device=device_name()) for r in rows]
    os.makedirs(args.out, exist_ok=True)
    if kept is not None:
        # a re-measured (case, grid, C) replaces the file's; the others stay (a --grids re-run
        # keeps the case's other grids); global attention keeps the full run's rows
        fresh = {_merge_key(r) for r in rows if r['case'] != GLOBAL}
        rows = [r for r in kept if _merge_key(r) not in fresh] + \
            [dict(r, rerun=True) for r in rows if _merge_key(r) in fresh]
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
