"""Mamba-YOLO on CPU: the selective scan at the detector's sizes beside the official reference scan,
and the whole detector's images per second.

Scan: the official code has no CPU scan but the reference of its tests (``selective_scan_ref`` in
``selective_scan/test_selective_scan.py``: ``exp`` of all decays at once, then one step per token
in a Python loop); :func:`selective_scan_ref` below is that function operation by operation, the
peer. Both get the inputs SS2D gives the scan at each SS2D site of Mamba-YOLO (four directions as
four B / C groups, ``d_state`` 16, batch 1): ``u, delta`` of ``(1, 4 * d_inner, H * W)`` at the
backbone stages' grids (the neck's XSSBlocks run at the grids and widths of stages 2-4). Timed:
forward without gradients and forward + backward (every input's gradient), process CPU time at one
thread (``benchmarks.mixers.time_call``), peak tensor memory beyond the inputs
(``benchmarks.mixers.peak_memory``, forked).

Detector: the config's model (``SingleStageDetector``: MambaYOLO, MambaYOLOPAFPN, YOLOv8Head with
its NMS) in eval mode on one 640x640 image, data preprocessing included.

Usage:
    python -m benchmarks.mamba_yolo                   # T at 640 -> benchmarks/results/mamba_yolo.md
    python -m benchmarks.mamba_yolo --quick           # small grids, no detector
"""
import argparse
import json
import os
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.mixers import peak_memory, time_call  # noqa: E402

D_STATE = 16
DIRECTIONS = 4
# the reference's fwd+bwd grows with D L^2, not D L: the backward of each step's slice
# ``delta_a[:, :, i]`` writes a zero gradient of the whole (D, L, N) tensor; a call projected
# slower than this from the last smaller site is skipped (at 160x160 it ran 15 CPU minutes
# without finishing)
PEER_MAX_S = 120.0
MEMORY_MAX_S = 20.0  # the peak memory repeats the call: skipped for slower calls
# the profiler behind the peak memory records every operation: the reference's per-token loop at
# 80x80 and above makes 10^5-10^6 events (hours of profiling), so its memory stops at 40x40
REF_MEMORY_MAX_TOKENS = 1600


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The official ``selective_scan_ref`` (real ``A``; ``B``, ``C`` of ``(batch, N, L)`` or grouped
    ``(batch, G, N, L)``), operation by operation: the peer."""
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B, C = B.float(), C.float()
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    delta_a = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    if B.dim() == 3:
        delta_b_u = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)
    else:  # 'B G N L -> B (G H) N L'
        B = B.repeat_interleave(dim // B.shape[1], dim=1)
        delta_b_u = torch.einsum('bdl,bdnl,bdl->bdln', delta, B, u)
    if C.dim() == 4:
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        if C.dim() == 3:
            y = torch.einsum('bdn,bn->bd', x, C[:, :, i])
        else:
            y = torch.einsum('bdn,bdn->bd', x, C[:, :, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return out.to(dtype_in)


def scan_sites(preset: str, size: int):
    """(H, W, d_inner) of the SS2D sites of the backbone stages at an ``size`` x ``size`` input."""
    from plugins.backbones.mamba_yolo import MambaYOLO
    widths = MambaYOLO.arch_zoo[preset]['widths']
    return [(-(-size // (4 * 2 ** i)), -(-size // (4 * 2 ** i)), 2 * w)
            for i, w in enumerate(widths)]


def scan_inputs(h: int, w: int, d_inner: int):
    """What SS2D (Mamba-YOLO's simple initialisation) hands the scan: A = -1, random dt."""
    torch.manual_seed(0)
    dim, length = DIRECTIONS * d_inner, h * w
    return dict(u=torch.randn(1, dim, length), delta=torch.randn(1, dim, length) * 0.5,
                A=-torch.ones(dim, D_STATE), B=torch.randn(1, DIRECTIONS, D_STATE, length),
                C=torch.randn(1, DIRECTIONS, D_STATE, length), D=torch.ones(dim),
                delta_bias=torch.randn(dim))


def _runner(fn, inputs, backward: bool):
    def run():
        if not backward:
            with torch.no_grad():
                fn(**inputs, delta_softplus=True)
            return
        leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
        fn(**leaves, delta_softplus=True).sum().backward()
    return run


def measure_scan(fn, inputs, budget_s: float, skip_fwdbwd: Optional[str] = None,
                 with_memory: bool = True) -> dict:
    res = {}
    for mode, backward in (('fwd', False), ('fwdbwd', True)):
        if backward and skip_fwdbwd:
            res.update(fwdbwd_ms=None, fwdbwd_mb=None, fwdbwd_note=skip_fwdbwd)
            continue
        run = _runner(fn, inputs, backward)
        res[f'{mode}_ms'] = ms = time_call(run, budget_s)
        res[f'{mode}_mb'] = (peak_memory(run) if with_memory and ms < MEMORY_MAX_S * 1e3
                             else None)
    return res


def run_scans(sites, budget_s: float, with_memory: bool = True, log=print) -> List[dict]:
    """Both scans at each site, the smallest grid first, so that the reference's fwd+bwd at a
    larger one can be projected (``D L^2``) and skipped where it would take hours."""
    from plugins.ops.selective_scan import selective_scan
    rows, prev = [], None
    for h, w, d_inner in sorted(sites, key=lambda s: s[0] * s[1]):
        inputs = scan_inputs(h, w, d_inner)
        ours = measure_scan(selective_scan, inputs, budget_s, with_memory=with_memory)
        skip = None
        if prev is not None:
            growth = (h * w) ** 2 * d_inner / ((prev['grid'][0] * prev['grid'][1]) ** 2 *
                                               prev['d_inner'])
            projected = prev['peer']['fwdbwd_ms'] * growth / 1e3
            if projected > PEER_MAX_S:
                skip = f'skipped: projected {projected:.0f} s'
        peer = measure_scan(selective_scan_ref, inputs, budget_s, skip,
                            with_memory and h * w <= REF_MEMORY_MAX_TOKENS)
        row = dict(grid=(h, w), d_inner=d_inner, channels=DIRECTIONS * d_inner, ours=ours,
                   peer=peer, work=h * w * d_inner)
        rows.append(row)
        prev = row if peer.get('fwdbwd_ms') else prev
        log(f'{h}x{w} d_inner={d_inner}: ours fwd {ours["fwd_ms"]:.1f} ms, fwd+bwd '
            f'{ours["fwdbwd_ms"]:.1f} ms | reference fwd {peer["fwd_ms"]:.1f} ms, fwd+bwd '
            f'{_fmt(peer["fwdbwd_ms"])} ms')
    return rows


def detector_speed(config: str, size: int, budget_s: float) -> dict:
    """Median CPU seconds of one ``size`` x ``size`` image through the detector (predict)."""
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    import plugins  # noqa: F401
    cfg = Config.fromfile(os.path.join(ROOT, config))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model).eval()
        model.init_weights()
    image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.))
    batch = dict(inputs=[image], data_samples=[DetDataSample(metainfo=meta)])

    def run():
        with torch.no_grad():
            model.test_step(batch)
    ms = time_call(run, budget_s, max_reps=3)
    return dict(config=config, size=size, ms_per_image=ms, images_per_s=1e3 / ms,
                params=sum(p.numel() for p in model.parameters()))


def _fmt(v, digits=1):
    return '—' if v is None else f'{v:.{digits}f}'


def write_markdown(rows, speed, path, threads):
    lines = ['# Mamba-YOLO on CPU', '',
             'Generated by `python -m benchmarks.mamba_yolo`. Process CPU time at '
             f'{threads} thread(s), fp32, batch 1.', '',
             '## Selective scan at the SS2D sites of Mamba-YOLO-T (640x640 input)', '',
             "Ours: `plugins.ops.selective_scan.selective_scan` (chunked). Reference: the official "
             "`selective_scan_ref` (the only CPU scan of the official code, in its tests), "
             're-implemented operation by operation. Inputs as SS2D gives them: 4 directions, '
             f'd_state {D_STATE}. The reference\'s memory is profiled up to '
             f'{REF_MEMORY_MAX_TOKENS} tokens (its per-token loop makes the profile of larger '
             "grids take hours); its fwd+bwd grows with D L^2 (each step's slice of the "
             '(D, L, N) decay tensor gets a whole-size zero gradient in the backward) and is '
             f'skipped where projected above {PEER_MAX_S:.0f} s.', '',
             '| grid | channels (4 x d_inner) | ours fwd ms | ref fwd ms | fwd speed-up | '
             'ours fwd+bwd ms | ref fwd+bwd ms | fwd+bwd speed-up | ours fwd+bwd MB | '
             'ref fwd+bwd MB |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        o, p = r['ours'], r['peer']
        up = (lambda a, b: f'{b / a:.1f}x' if a and b else '—')
        lines.append(f"| {r['grid'][0]}x{r['grid'][1]} | {r['channels']} | {_fmt(o['fwd_ms'])} | "
                     f"{_fmt(p['fwd_ms'])} | {up(o['fwd_ms'], p['fwd_ms'])} | "
                     f"{_fmt(o['fwdbwd_ms'])} | {_fmt(p['fwdbwd_ms'])}"
                     f"{' (' + p['fwdbwd_note'] + ')' if p.get('fwdbwd_note') else ''} | "
                     f"{up(o['fwdbwd_ms'], p['fwdbwd_ms'])} | {_fmt(o.get('fwdbwd_mb'), 0)} | "
                     f"{_fmt(p.get('fwdbwd_mb'), 0)} |")
    if speed:
        lines += ['', '## Detector', '',
                  f"`{speed['config']}` ({speed['params'] / 1e6:.2f} M parameters), one "
                  f"{speed['size']}x{speed['size']} image, predict (preprocessing, backbone, neck, "
                  f"head, NMS): {speed['ms_per_image']:.0f} ms per image, "
                  f"{speed['images_per_s']:.2f} images/s."]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='t', choices=['t', 'b', 'l'])
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--quick', action='store_true',
                        help='small grids, no memory, no detector')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--budget', type=float, default=10.0, help='seconds per measurement')
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = 64 if args.quick else args.size
    rows = run_scans(scan_sites(args.preset, size), 0.05 if args.quick else args.budget,
                     with_memory=not args.quick)
    speed = None if args.quick else detector_speed(
        f'configs/mamba_yolo/mamba-yolo-{args.preset}_pafpn_8xb64-300e_coco.py', size,
        args.budget)
    if speed:
        print(f"detector {speed['size']}x{speed['size']}: {speed['ms_per_image']:.0f} ms, "
              f"{speed['images_per_s']:.2f} images/s")
    os.makedirs(args.out, exist_ok=True)
    name = 'mamba_yolo_quick' if args.quick else 'mamba_yolo'
    with open(os.path.join(args.out, f'{name}.json'), 'w') as f:
        json.dump(dict(scans=rows, detector=speed), f, indent=0)
    write_markdown(rows, speed, os.path.join(args.out, f'{name}.md'), args.threads)
    return rows, speed


if __name__ == '__main__':
    main()
