"""Cases of the mixer benchmark: one module per family, each defining ``CASES``.

``benchmarks/mixers.py`` collects ``CASES`` from every module of this package and times each case
and its peer on the same inputs in the same run.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch.nn as nn


@dataclass
class MixerCase:
    """One mixer of the benchmark and the best peer available here.

    build(dim, num_heads) -> nn.Module mapping (B, C, H, W) -> (B, C, H, W) (the toolkit's mixer).
    build_peer(ours) -> callable x -> y on the same (B, C, H, W) input, computing the same function
        with the same weights as ``ours`` (timm, natten, or a faithful re-run of the official code's
        formulation); None when no peer exists.
    scaling: 'local' or 'linear' (cost linear in tokens) or 'quadratic' (global attention).
    max_tokens: largest H*W the case is run at (None: all grids); set it only where a peer or the
        mixer itself cannot run larger, and say why in ``note``.
    grids: (H, W, C) the full run measures this case at beyond the benchmark's common grids.
    peer_scaling: the peer's cost class where it differs from ``scaling`` (a quadratic re-run of
        a linear mixer): the projection that skips calls too large to run uses it for the peer.
    """
    name: str
    paper: str
    build: Callable[[int, int], nn.Module]
    scaling: str
    peer_name: Optional[str] = None
    build_peer: Optional[Callable[[nn.Module], Callable]] = None
    max_tokens: Optional[int] = None
    note: str = ''
    grids: List[Tuple[int, int, int]] = field(default_factory=list)
    peer_scaling: Optional[str] = None
