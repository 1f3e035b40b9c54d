"""Backbone benchmark: every preset of ``plugins/backbones/reference.yaml`` beside its peer.

For each preset and input (224x224 batch 1 and batch 8, 800x1216 batch 1 by default) the toolkit's
backbone (all stage outputs) and its peer (``benchmarks/backbone_peers.py``: timm's model or the
official code) run forward in eval mode without gradients, in the same process, fp32, CPU. Reported:
milliseconds per image (median over repeats that alternate between ours and the peer; process CPU
time with one thread, the clock of ``benchmarks/mixers.py``) and images per second, and the peak
tensor memory of the call beyond the weights and the input (``benchmarks.mixers.peak_memory``: the
torch profiler's allocation events, in a forked child).

Against the limit: the "ideal" time of a call is the backbone's multiply-adds
(``plugins/utils/flops.py``, the FLOPs table's count) divided by the fp32 matrix-multiply rate
measured in the same process just before each input (``benchmarks.mixers.matmul_rate``); "x
ideal" = our time / ideal. ``--compile`` also times ``torch.compile`` of ours (inductor, the
compilation itself left out; its seconds are reported) alternating with the eager models.

Every case is time-bound: a model whose call, projected from its last measured input (linear in
pixels), would take longer than ``--max-call-s`` or more memory than ``--max-mb`` is skipped there
and reported as skipped. Peers that cannot run here are reported as "n/a" with the reason. The
allocator and the threads are set as in ``benchmarks/mixers.py`` (one thread by default).

Usage:
    python -m benchmarks.backbones --isolate   # every preset -> benchmarks/results/backbones.md
    python -m benchmarks.backbones --presets 'VAN-b0,NAT-*' --sizes 224x224x1
    python -m benchmarks.backbones --presets 'NAT-mini' --compile   # compiled vs eager
    python -m benchmarks.backbones --official-root DIR     # folder of official checkouts (peers)
    python -m benchmarks.backbones --device cuda --presets 'NAT-mini' --out DIR/backbones.md

``--device cuda`` runs ours and the peers on the GPU (clock and peak memory as in
``benchmarks/mixers.py`` on a GPU).
"""
import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import backbone_peers, mixers  # noqa: E402
from benchmarks.backbone_peers import OFFICIAL_ROOT_ENV, PeerContext, PeerUnavailable  # noqa: E402
from benchmarks.mixers import (matmul_rate, peak_memory, repeats_within, settle_allocator,  # noqa: E402,E501
                               time_once, useful_macs)

DEFAULT_SIZES = [(224, 224, 1), (224, 224, 8), (800, 1216, 1)]
OUT = os.path.join(ROOT, 'benchmarks', 'results', 'backbones.md')
MEMORY_MAX_S = 40.  # the peak memory repeats the call once: skipped for slower calls


def all_presets() -> List[Tuple[str, str]]:
    """(architecture, preset) of every preset in reference.yaml, in file order."""
    from plugins.backbones.reference import load_reference
    return [(arch, preset) for arch, entry in load_reference().items()
            for preset in entry.get('presets', {})]


def case_name(arch: str, preset: str) -> str:
    return f'{arch}-{preset}'


def parse_sizes(text: str) -> List[Tuple[int, int, int]]:
    """``'224x224x1,800x1216x1'`` -> [(224, 224, 1), (800, 1216, 1)] (H x W x batch)."""
    sizes = []
    for item in text.split(','):
        parts = [int(v) for v in item.strip().lower().split('x')]
        if len(parts) == 2:
            parts.append(1)
        if len(parts) != 3 or min(parts) < 1:
            raise argparse.ArgumentTypeError(f'size {item!r} is not HxW or HxWxBATCH')
        sizes.append(tuple(parts))
    return sizes


def build_ours(arch: str, preset: str):
    import plugins  # noqa: F401  (registers the backbones)
    from plugins.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type=arch, arch=preset))
    return model.eval().to(mixers.DEVICE)


def _projected_skip(prev: Optional[dict], pixels: int, max_call_s: float,
                    max_mb: float) -> Optional[str]:
    if not prev:
        return None
    grow = pixels / prev['pixels']
    ms, mb = prev['ms'] * grow, (prev['mb'] or 0.) * grow
    if ms > max_call_s * 1e3 or mb > max_mb:
        return f'skipped: projected {ms / 1e3:.0f} s / {mb:.0f} MB per call'
    return None


_MEASURE_ERRORS = (RuntimeError, ValueError, MemoryError, AssertionError)


def measure_pair(models: Dict[str, object], size, repeat: int,
                 budget_s: float) -> Dict[str, dict]:
    """``{who: dict(ms, mb) or dict(note)}`` of the given models on one input. After one warm-up
    call each, the timed calls alternate between the models (ours, peer, ours, ...), so that a
    drift of the machine's speed during the case weighs on both sides alike; ms is the median of
    up to ``repeat`` calls within about ``budget_s`` per model (one call where slower). A model
    named ``compiled`` reports its first call's seconds (the compilation) as ``compile_s``."""
    h, w, batch = size
    x = torch.randn(batch, 3, h, w, device=mixers.DEVICE)
    runs, first, out = {}, {}, {}
    for who, model in models.items():
        def run(model=model):
            with torch.no_grad():
                model(x)
        try:
            if who == 'compiled':  # the first call compiles (in worker processes too): wall time
                start = time.perf_counter()
                run()
                out[who] = dict(compile_s=time.perf_counter() - start)
            first[who] = time_once(run)
            runs[who] = run
        except _MEASURE_ERRORS as err:
            out[who] = dict(note=f'failed: {type(err).__name__}: {str(err)[:100]}')
        except Exception as err:  # noqa: BLE001  (a compiler error is reported, not raised)
            if who != 'compiled':
                raise
            out[who] = dict(note=f'failed: {type(err).__name__}: {str(err)[:100]}')
    reps = repeats_within(budget_s, max(first.values(), default=0.), repeat)
    times = {who: [] for who in runs}
    for _ in range(reps):
        for who, run in runs.items():
            times[who].append(time_once(run))
    for who, run in runs.items():
        ms = statistics.median(times[who]) * 1e3
        out[who] = dict(out.get(who, {}), ms=ms,
                        mb=peak_memory(run) if ms < MEMORY_MAX_S * 1e3 and who != 'compiled'
                        else None)
    return out


def run_preset(arch: str, preset: str, sizes, ctx: PeerContext, repeat: int = 3,
               budget_s: float = 5., max_call_s: float = 60., max_mb: float = 8000.,
               log=print, compile_: bool = False) -> List[dict]:
    """Rows of one preset: ours (and ``torch.compile`` of ours) and its peer at every size."""
    name = case_name(arch, preset)
    models: Dict[str, object] = {}
    errors: Dict[str, str] = {}
    labels = {'ours': 'ours', 'compiled': 'torch.compile(ours)'}
    try:
        models['ours'] = build_ours(arch, preset)
        if compile_:
            models['compiled'] = torch.compile(models['ours'])
    except Exception as err:  # noqa: BLE001  (reported in the table)
        errors['ours'] = f'cannot build: {type(err).__name__}: {str(err)[:100]}'
    entry = backbone_peers.find_peer(arch, preset)
    labels['peer'] = entry.describe(preset) if entry else '-'
    try:
        labels['peer'], models['peer'] = backbone_peers.build_peer(arch, preset, ctx)
        if isinstance(models['peer'], torch.nn.Module):
            models['peer'] = models['peer'].to(mixers.DEVICE)
    except PeerUnavailable as err:
        errors['peer'] = f'n/a ({err})'
    except Exception as err:  # noqa: BLE001
        errors['peer'] = f'n/a (cannot build: {type(err).__name__}: {str(err)[:100]})'
    rows, last, macs_at = [], {}, {}
    whos = ('ours', 'peer', 'compiled') if compile_ else ('ours', 'peer')
    for size in sizes:
        pixels = size[0] * size[1] * size[2]
        notes = dict(errors)
        for who in models:
            if who not in notes:
                why = _projected_skip(last.get(who), pixels, max_call_s, max_mb)
                if why:
                    notes[who] = why
        rate = matmul_rate()
        got = measure_pair({w: m for w, m in models.items() if w not in notes}, size, repeat,
                           budget_s)
        if 'ours' in models and size[:2] not in macs_at:  # per image: batch b costs b times
            macs_at[size[:2]] = useful_macs(models['ours'],
                                            torch.randn(1, 3, *size[:2], device=mixers.DEVICE))
        for who in whos:
            row = dict(case=name, arch=arch, preset=preset, size=list(size), who=who,
                       label=labels[who], ms=None, mb=None)
            if who in notes:
                row['note'] = notes[who]
            else:
                row.update(got.get(who, dict(note='n/a')))
                if row['ms'] is not None:
                    last[who] = dict(row, pixels=pixels)
            if who != 'peer':
                _add_ideal(row, macs_at.get(size[:2]), rate)
            rows.append(row)
        ours = next(r for r in rows[::-1] if r['who'] == 'ours')
        peer = next(r for r in rows[::-1] if r['who'] == 'peer')
        log(f'{name} {size[0]}x{size[1]} b{size[2]}: ours {_per_img(ours)} ms/img '
            f'(x{_fmt(ours.get("x_ideal"), 2)} ideal), '
            f'peer {_per_img(peer) if peer["ms"] else peer.get("note", "n/a")}', flush=True)
    return rows


def _add_ideal(row: dict, macs_per_image: Optional[int], rate: float) -> dict:
    """Ideal ms of the row's call (its multiply-adds at ``rate``) and its time in units of it."""
    row.update(macs=macs_per_image, gemm_rate=rate)
    if macs_per_image:
        row['ideal_ms'] = macs_per_image * row['size'][2] / rate * 1e3
        row['x_ideal'] = row['ms'] / row['ideal_ms'] if row.get('ms') else None
    return row


def run_isolated(cases, sizes, args, log=print) -> List[dict]:
    """Each preset (with its peer) in a subprocess of its own, its address space capped."""
    import subprocess
    import tempfile
    rows = []
    for arch, preset in cases:
        with tempfile.NamedTemporaryFile(suffix='.json') as tmp:
            cmd = [sys.executable, '-m', 'benchmarks.backbones', '--worker-out', tmp.name,
                   '--presets', case_name(arch, preset), '--sizes', _sizes_text(sizes),
                   '--repeat', str(args.repeat), '--budget', str(args.budget),
                   '--max-call-s', str(args.max_call_s), '--max-mb', str(args.max_mb)]
            for flag in ('official_root', 'threads', 'max_gb', 'device'):
                if getattr(args, flag):
                    cmd += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
            for flag in ('compile', 'system_allocator'):
                if getattr(args, flag):
                    cmd += [f'--{flag.replace("_", "-")}']
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                log(line)
            try:
                with open(tmp.name) as f:
                    got = json.load(f)
            except (OSError, ValueError):
                got = []
            if proc.returncode != 0 or not got:
                tail = proc.stderr.strip().splitlines()[-1:]
                log(f'{case_name(arch, preset)}: worker failed (exit {proc.returncode}): {tail}')
                got = [dict(case=case_name(arch, preset), arch=arch, preset=preset,
                            size=list(s), who=who, label=who, ms=None, mb=None,
                            note=f'worker failed (exit {proc.returncode})')
                       for s in sizes for who in ('ours', 'peer', 'compiled')
                       if who != 'compiled' or args.compile]
            rows.extend(got)
    return rows


def _sizes_text(sizes) -> str:
    return ','.join(f'{h}x{w}x{b}' for h, w, b in sizes)


def _per_img(row) -> str:
    return _fmt(None if row['ms'] is None else row['ms'] / row['size'][2])


def _fmt(v, digits=1) -> str:
    if v is None:
        return 'n/a'
    return f'{v:.{digits}f}' if v < 1000 else f'{v:.0f}'


def _ips(row) -> Optional[float]:
    return None if row['ms'] is None else 1e3 * row['size'][2] / row['ms']


def write_markdown(rows: List[dict], path: str) -> None:
    pairs: Dict[tuple, dict] = {}
    for r in rows:
        pairs.setdefault((r['case'], tuple(r['size'])), {})[r['who']] = r
    compiled = any(r['who'] == 'compiled' for r in rows)
    threads = rows[0].get('threads', torch.get_num_threads()) if rows else 1
    device = rows[0].get('device', 'cpu') if rows else 'cpu'
    on_cpu = device == 'cpu'
    clock_txt = ('process CPU time with one thread, wall time otherwise' if on_cpu else
                 'wall time around synchronised calls')
    memory_txt = ('the profiler\'s raw allocation events, in a forked child' if on_cpu else
                  'the CUDA allocator\'s peak')
    lines = [f'# Backbone benchmark ({"CPU" if on_cpu else device}, fp32, forward, eval, '
             'no grad)', '',
             'Generated by `python -m benchmarks.backbones`; do not edit by hand.', '',
             f'torch {torch.__version__}, {threads} thread(s), device {device}. ms/img: median '
             'time of one call divided by the batch, the calls of ours and of the peer '
             f'alternating ({clock_txt}); img/s = '
             '1000 / (ms/img). Peak MB: the most tensor memory alive during the call beyond the '
             f'weights and the input ({memory_txt}). '
             'ratio = peer ms/img / our ms/img (> 1: ours is faster). GMAC/img: multiply-adds '
             '(`plugins/utils/flops.py`); x ideal = our time / (multiply-adds / the fp32 '
             'matrix-multiply rate measured in the same process before that input). Every '
             'backbone returns all four stages; the official classification models compute '
             'their last stage and a pooling instead. Peers run with their own random weights; '
             'a peer that cannot run here is n/a with the reason.'
             + (' compiled: `torch.compile` of ours (inductor), timed after its compilation '
                '(compile s: its wall time); speed-up = eager / compiled.' if compiled else ''), '',
             '| backbone | input | batch | ours ms/img | ours img/s | GMAC/img | x ideal | peer | '
             'peer ms/img | peer img/s | ratio | peak MB ours | peak MB peer |'
             + (' compiled ms/img | speed-up | compile s |' if compiled else ''),
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|'
             + ('---|---|---|' if compiled else '')]
    notes = []
    for (case, size), pair in pairs.items():
        ours, peer = pair.get('ours'), pair.get('peer')
        if ours is None:
            continue
        peer = peer or dict(ms=None, mb=None, label='-', size=list(size))
        ratio = (peer['ms'] / ours['ms']) if ours['ms'] and peer['ms'] else None
        peer_label = peer['label'] if peer['ms'] is not None else \
            (peer.get('note') or peer['label'])
        macs = ours.get('macs')
        line = (f'| {case} | {size[0]}x{size[1]} | {size[2]} | {_per_img(ours)} | '
                f'{_fmt(_ips(ours))} | {_fmt(macs / 1e9 if macs else None, 2)} | '
                f'{_fmt(ours.get("x_ideal"), 2)} | {peer_label} | {_per_img(peer)} | '
                f'{_fmt(_ips(peer))} | {_fmt(ratio, 2)} | {_fmt(ours["mb"])} | '
                f'{_fmt(peer["mb"])} |')
        if compiled:
            comp = pair.get('compiled') or dict(ms=None, size=list(size))
            speed = ours['ms'] / comp['ms'] if ours['ms'] and comp.get('ms') else None
            line += (f' {_per_img(comp) if comp.get("ms") else comp.get("note", "n/a")} | '
                     f'{_fmt(speed, 2)} | {_fmt(comp.get("compile_s"))} |')
        lines.append(line)
        if ours.get('note'):
            notes.append(f'- {case} {size[0]}x{size[1]} batch {size[2]} (ours): {ours["note"]}')
    if notes:
        lines += ['', '## Cases without a measurement of ours', ''] + notes
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--presets', default='*',
                        help="comma-separated globs over ARCH-preset names, e.g. 'VAN-b0,NAT-*'")
    parser.add_argument('--sizes', type=parse_sizes, default=DEFAULT_SIZES,
                        help='HxWxBATCH list, default 224x224x1,224x224x8,800x1216x1')
    parser.add_argument('--repeat', type=int, default=3, help='timed repeats at most')
    parser.add_argument('--budget', type=float, default=5.,
                        help='seconds of repeats per measurement (a slower call runs once)')
    parser.add_argument('--max-call-s', type=float, default=60.,
                        help='skip a call projected to take longer (seconds)')
    parser.add_argument('--max-mb', type=float, default=8000.,
                        help='skip a call projected to need more tensor memory (MB)')
    parser.add_argument('--official-root', default=os.environ.get(OFFICIAL_ROOT_ENV),
                        help='folder of official checkouts for the peers '
                             f'(or ${OFFICIAL_ROOT_ENV})')
    parser.add_argument('--isolate', action='store_true',
                        help='each preset in a subprocess of its own')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1: process CPU time is the clock)')
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda[:N]')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile of ours (inductor) against eager')
    parser.add_argument('--system-allocator', action='store_true',
                        help="leave glibc's malloc as it is (see benchmarks/mixers.py)")
    parser.add_argument('--max-gb', type=float, default=None,
                        help='address-space limit of the (worker) process')
    parser.add_argument('--out', default=OUT, help='markdown table; raw rows go beside as .json')
    parser.add_argument('--worker-out', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.max_gb:
        import resource
        limit = int(args.max_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if not args.system_allocator:
        settle_allocator()
    torch.set_num_threads(args.threads)
    mixers.set_device(args.device)
    presets = all_presets()
    chosen = set(backbone_peers.matching(args.presets, [case_name(*p) for p in presets]))
    cases = [p for p in presets if case_name(*p) in chosen]
    if not cases:
        parser.error(f'no preset matches {args.presets!r}; presets: '
                     f'{", ".join(case_name(*p) for p in presets)}')
    ctx = PeerContext(official_root=args.official_root)
    if args.isolate and not args.worker_out:
        rows = run_isolated(cases, args.sizes, args)
    else:
        rows = []
        for arch, preset in cases:
            rows += run_preset(arch, preset, args.sizes, ctx, args.repeat, args.budget,
                               args.max_call_s, args.max_mb, compile_=args.compile)
    rows = [dict(r, threads=args.threads, device=mixers.device_name()) for r in rows]
    if args.worker_out:
        with open(args.worker_out, 'w') as f:
            json.dump(rows, f)
        return rows
    raw = os.path.splitext(args.out)[0] + '.json'
    if os.path.exists(raw):  # a partial re-run: keep the other cases' rows
        with open(raw) as f:
            kept = json.load(f)
        fresh = {(r['case'], tuple(r['size'])) for r in rows}
        rows = [r for r in kept if (r['case'], tuple(r['size'])) not in fresh] + rows
    order = {case_name(*p): i for i, p in enumerate(presets)}
    rows.sort(key=lambda r: (order.get(r['case'], len(order)), r['size'][0] * r['size'][1],
                             r['size'][2], ('ours', 'peer', 'compiled').index(r['who'])))
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(raw, 'w') as f:
        json.dump(rows, f, indent=0)
    write_markdown(rows, args.out)
    print(f'wrote {args.out}')
    return rows


if __name__ == '__main__':
    main()
