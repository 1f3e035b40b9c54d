"""Small pieces shared by the attention primitives: pair arguments, padding to multiples,
relative-position index tables, head splitting, whether a graph is being traced (and whether
only to count FLOPs).

Pure tensor functions (no mm* import), usable from every module of ``plugins/ops`` and
``plugins/mixers``.
"""
import contextlib
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F

IntPair = Union[int, Sequence[int]]


def to_pair(value: IntPair, name: str = 'value') -> Tuple[int, int]:
    """``7 -> (7, 7)``; ``(7, 5) -> (7, 5)``; anything else raises naming ``name``."""
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')
    return value  # type: ignore[return-value]


def pad_amount(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach the next multiple of ``multiple``."""
    return (-size) % multiple


def pad_to_multiple(x: torch.Tensor, multiple: IntPair, dims: Tuple[int, int] = (-2, -1),
                    value: float = 0.0) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad two spatial dimensions of ``x`` at their end (bottom/right) to multiples.

    Args:
        x: any tensor; ``dims`` name its (H, W) dimensions (default: the last two, as in NCHW).
        multiple: int or (mh, mw).
        dims: the (H, W) dimensions, e.g. ``(1, 2)`` for NHWC.
        value: the fill value.

    Returns:
        the padded tensor (``x`` itself when nothing is needed) and the amounts ``(pad_h, pad_w)``.
    """
    mh, mw = to_pair(multiple, 'multiple')
    dh, dw = (d % x.dim() for d in dims)
    ph, pw = pad_amount(x.shape[dh], mh), pad_amount(x.shape[dw], mw)
    if ph == 0 and pw == 0:
        return x, (0, 0)
    # F.pad lists pads from the last dimension backwards: (last_lo, last_hi, prev_lo, prev_hi, ...)
    pads = [0, 0] * (x.dim() - min(dh, dw))
    pads[2 * (x.dim() - 1 - dh) + 1] = ph
    pads[2 * (x.dim() - 1 - dw) + 1] = pw
    return F.pad(x, pads, value=value), (ph, pw)


def crop_to(x: torch.Tensor, size: Tuple[int, int], dims: Tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the first ``size = (H, W)`` along ``dims``."""
    dh, dw = (d % x.dim() for d in dims)
    if x.shape[dh] == size[0] and x.shape[dw] == size[1]:
        return x
    return x.narrow(dh, 0, size[0]).narrow(dw, 0, size[1])


def relative_position_index(window: IntPair, device=None) -> torch.Tensor:
    """Swin's relative-position index for a window of ``(wh, ww)`` tokens.

    Entry ``[i, j]`` (row-major token indices inside the window) is
    ``(dy + wh - 1) * (2 * ww - 1) + (dx + ww - 1)`` with ``(dy, dx)`` = position of ``i`` minus
    position of ``j``: the row of a ``((2wh-1) * (2ww-1), heads)`` bias table (Swin, Sec. 3.2,
    Eq. 4). Shape ``(wh * ww, wh * ww)``, int64.
    """
    wh, ww = to_pair(window, 'window')
    ys, xs = torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device),
                            indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, heads * d, H, W) -> (B, heads, H, W, d)`` (a copy in the heads-first layout)."""
    b, c, h, w = x.shape
    return x.reshape(b, num_heads, c // num_heads, h, w).permute(0, 1, 3, 4, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, H, W, d) -> (B, heads * d, H, W)``."""
    b, nh, h, w, d = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(b, nh * d, h, w)


def graph_tracing() -> bool:
    """Whether a tracer records this call into a graph (``torch.jit.trace``, ``torch.export``,
    the ONNX exporter). Ops whose fast eager path branches on tensor values in Python (or runs a
    custom autograd function with strided views) take their data-independent path then;
    ``torch.compile`` is not a tracer here: it runs such branches eagerly (a graph break)."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting() or \
        torch.onnx.is_in_onnx_export()


def consume_saved(ctx, name: str, owner: str):
    """``ctx.<name>``, the buffers a hand-written backward consumes (frees or overwrites), taken
    from ``ctx``; a second backward through the same graph (``retain_graph``) finds them gone and
    is refused with a clear error."""
    saved = getattr(ctx, name)
    if saved is None:
        raise RuntimeError(f'{owner}: backward runs once per forward (retain_graph is not '
                           'supported)')
    setattr(ctx, name, None)
    return saved


_COUNTING_FLOPS = [False]


@contextlib.contextmanager
def counting_flops():
    """Marks a trace made only to count FLOPs (``plugins.utils.flops.count_flops``): there an op
    with a traceable fallback may run its eager path as one opaque node
    (:func:`untraced_call`) instead, since the tracer keeps every intermediate tensor it records
    (Mamba-YOLO-T at 640: killed at 19 GB through the doubling scan; 0.74 GB peak with the scan
    opaque)."""
    previous, _COUNTING_FLOPS[0] = _COUNTING_FLOPS[0], True
    try:
        yield
    finally:
        _COUNTING_FLOPS[0] = previous


def flop_counting() -> bool:
    """Whether this call is being traced by :func:`counting_flops`' FLOP counter."""
    return _COUNTING_FLOPS[0] and torch.jit.is_tracing()


class _Untraced(torch.autograd.Function):
    """``fn(*args)`` recorded as one ``prim::PythonOp`` node, run with the tracer paused: its
    own operations, and their intermediates, stay out of the trace (forward only)."""

    @staticmethod
    def forward(ctx, fn, *args):
        state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            return fn(*args)
        finally:
            torch._C._set_tracing_state(state)


def untraced_call(fn, *args):
    """``fn(*args)`` as one opaque node of a FLOP counter's trace (see :func:`counting_flops`;
    the counter counts nothing inside it)."""
    return _Untraced.apply(fn, *args)
