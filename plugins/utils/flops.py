"""FLOPs as the papers count them: mmengine's analyser (one multiply-add = one FLOP), except for
attention operators whose traced cost is not their arithmetic cost.

A module can define ``attention_macs(*args) -> int``: the multiply-adds of the attention computed
in its own ``forward`` (outside its child modules) on the positional arguments of that call (its
input ``x``, and e.g. the grid size where the forward takes it). Attention on
``F.scaled_dot_product_attention`` needs it too: the analyser does not count that operator. The analyser's count of that part
is then replaced by it. Neighborhood attention needs it: its tiled kernel multiplies each query
tile with the union of its tile's neighborhoods, which the analyser counts as dense matmuls
(NAT-Mini at 224: 0.55 GFLOPs of matmul against 0.14 G of neighborhood products); the NAT / DiNAT
papers count k x k keys per query (NAT-Mini 2.7 G).

``F.scaled_dot_product_attention``, which the analyser does not know, counts as the two products
it computes, ``q k^T`` and ``attention v`` (``B L S (E + Ev)``), as the papers count attention.
"""
import contextlib
import math

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

from ..ops.utils import counting_flops


def count_flops(model: nn.Module, inputs: tuple) -> int:
    """Multiply-adds of ``model(*inputs)`` with the ``attention_macs`` corrections."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_macs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    # one trace; nothing of it needs gradients; ops with a traceable fallback run opaque
    with _recording_attention_macs(model) as exact, torch.no_grad(), counting_flops():
        total = analyzer.total()
    if exact:
        traced = analyzer.by_module()
        modules = dict(model.named_modules())
        for name, macs in exact.items():
            prefix = f'{name}.' if name else ''
            own = traced.get(name, 0) - sum(traced.get(prefix + child, 0)
                                            for child, _ in modules[name].named_children())
            total += macs - own
    return int(total)


@contextlib.contextmanager
def _recording_attention_macs(model: nn.Module):
    """``{module name: attention_macs}`` summed over the calls made inside the context."""
    found, hooks = {}, []
    for name, module in model.named_modules():
        if callable(getattr(module, 'attention_macs', None)):
            def record(mod, args, name=name):
                found[name] = found.get(name, 0) + int(mod.attention_macs(*args))
            hooks.append(module.register_forward_pre_hook(record))
    try:
        yield found
    finally:
        for hook in hooks:
            hook.remove()


def sdpa_macs(inputs, outputs) -> int:
    """Multiply-adds of a traced ``scaled_dot_product_attention(q, k, v, ...)``: ``q k^T`` and
    the attention-weighted sum of ``v``, every query against every key it is given."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])
