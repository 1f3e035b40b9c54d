"""Ring self-attention: per-process peak memory and time against the number of processes.

For each process count P (default 1, 2, 4), P gloo processes on this machine (forked, loopback)
each hold their contiguous chunk of the tokens of one H x W map (batch 1, C channels in
``heads`` heads, fp32) and run ``ring_attention`` forward + backward (q, k, v gradients); with
P = 1 that is SDPA, the one-process op. Reported per P:

- peak memory: per process, the largest amount of tensor memory alive during one forward +
  backward beyond the inputs: the torch profiler's raw allocation and free events (``[memory]``),
  summed in time order (every allocation of torch's CPU allocator, which does not cache); the
  table gives the largest over the processes and its ratio to P = 1;
- time: the median over repeats of the slowest process's wall time for forward + backward, and
  the CPU time of one process (one thread each).

Processes share the machine's cores: with more processes than cores they time-share, so wall
time then measures the machine, not the method; CPU time per process stays meaningful.

Usage:
    python -m benchmarks.ring_attention                 # writes benchmarks/results/ring_attention.*
    python -m benchmarks.ring_attention --grid 32x32 --worlds 1 2 --out /some/dir   # smoke run
"""
import argparse
import json
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.mixers import profiled_peak_mb
from plugins.ops.ring_attention import ring_attention, shard_sizes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, grid, dim, heads, repeats, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    n = shard_sizes(grid[0] * grid[1], world)[rank]
    gen = torch.Generator().manual_seed(rank)
    q, k, v = (torch.randn(1, heads, n, dim // heads, generator=gen).requires_grad_()
               for _ in range(3))
    grad = torch.randn(1, heads, n, dim // heads, generator=gen)

    def run():
        for t in (q, k, v):
            t.grad = None
        ring_attention(q, k, v).backward(grad)

    run()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        dist.barrier()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    dist.barrier()
    peak = profiled_peak_mb(run)
    with open(os.path.join(out_dir, f'{rank}.json'), 'w') as f:
        json.dump(dict(rank=rank, tokens=n, walls=walls, cpus=cpus, peak_mb=peak), f)
    dist.destroy_process_group()


def measure(world, grid, dim, heads, repeats) -> dict:
    """One row of the table: P processes, their chunks of the grid's tokens."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_worker, args=(world, free_port(), grid, dim, heads, repeats, out_dir),
                           nprocs=world, start_method='fork')
        ranks = []
        for r in range(world):
            with open(os.path.join(out_dir, f'{r}.json')) as f:
                ranks.append(json.load(f))
    slowest = [max(r['walls'][i] for r in ranks) for i in range(repeats)]
    return dict(world=world, grid=list(grid), dim=dim, heads=heads,
                tokens_per_rank=max(r['tokens'] for r in ranks),
                peak_mb=max(r['peak_mb'] for r in ranks),
                wall_s=statistics.median(slowest),
                cpu_s=statistics.median(statistics.median(r['cpus']) for r in ranks))


def write_markdown(rows, path, cores, load):
    base = rows[0]
    g = base['grid']
    lines = [
        '# Ring self-attention: memory and time per process',
        '',
        f'One {g[0]}x{g[1]} map ({g[0] * g[1]} tokens), C = {base["dim"]} in {base["heads"]} '
        f'heads, batch 1, fp32, forward + backward (q, k, v gradients); P gloo processes on one '
        f'machine ({cores} cores, shared: load average {load:.1f} when the run ended), one '
        f'thread each. P = 1 is SDPA (the one-process op). Written by '
        f'`python -m benchmarks.ring_attention`.',
        '',
        '| processes P | tokens per process | peak memory per process (MB) | vs P = 1 | '
        'wall time, slowest process (s) | CPU time per process (s) |',
        '|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        lines.append(f'| {r["world"]} | {r["tokens_per_rank"]} | {r["peak_mb"]:.1f} | '
                     f'{r["peak_mb"] / base["peak_mb"]:.2f} (1/P = {1 / r["world"]:.2f}) | '
                     f'{r["wall_s"]:.2f} | {r["cpu_s"]:.2f} |')
    lines += ['', f'With more processes than the machine\'s {cores} cores the processes '
              f'time-share them: wall time then counts the waiting; CPU time per process is the '
              f'work each does.']
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plot(rows, path) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    worlds = [r['world'] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(worlds, [r['peak_mb'] for r in rows], '-o', label='measured')
    axes[0].plot(worlds, [rows[0]['peak_mb'] / w for w in worlds], ':',
                 label='(value at P = 1) / P')
    axes[0].set_ylabel('peak memory per process (MB)')
    axes[1].plot(worlds, [r['cpu_s'] for r in rows], '-o', label='CPU time per process')
    axes[1].plot(worlds, [r['wall_s'] for r in rows], '-s', label='wall time (slowest process)')
    axes[1].plot(worlds, [rows[0]['cpu_s'] / w for w in worlds], ':', label='(value at P = 1) / P')
    axes[1].set_ylabel('seconds, forward + backward')
    g = rows[0]['grid']
    for ax in axes:
        ax.set_xlabel('processes P')
        ax.set_xticks(worlds)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f'ring attention, {g[0]}x{g[1]} tokens, C = {rows[0]["dim"]}, CPU fp32')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--grid', default='128x128', help='H x W tokens')
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--worlds', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=os.path.join(ROOT, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    grid = tuple(int(v) for v in args.grid.split('x'))
    rows = []
    for world in args.worlds:
        rows.append(measure(world, grid, args.dim, args.heads, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'ring_attention.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    write_markdown(rows, os.path.join(args.out, 'ring_attention.md'), os.cpu_count(),
                   os.getloadavg()[0])
    write_plot(rows, os.path.join(args.out, 'ring_attention.png'))
    return rows


if __name__ == '__main__':
    main()
