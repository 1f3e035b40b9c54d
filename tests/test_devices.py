"""The ops, mixers and backbones on every device and autocast dtype give the CPU fp32 numbers.

Each case is computed once on the CPU in fp32 (the reference) and again on a device, in fp32 or
under ``torch.autocast`` at fp16 / bf16, from the same inputs; the two agree within the dtype's
tolerance, relative to the largest magnitude of the reference. The CUDA cases run where a GPU is
present and are skipped otherwise; the CPU runs bf16 autocast (its fp32 is the reference).
Neighborhood attention dispatches to NATTEN's fused kernels on CUDA where natten is installed and
to the toolkit's own paths otherwise (last tests).
"""
import pytest
import torch

from plugins.ops.band_attention import band_attention_2d
from plugins.ops.depthwise_conv import dilated_depthwise_conv2d
from plugins.ops.fft_conv import fft_causal_conv2d, fft_conv2d_same
from plugins.ops.global_attention import dense_attention, global_attention
from plugins.ops.halo import halo_attention_2d
from plugins.ops.lightning_attention import lightning_attention
from plugins.ops.linear_attention import (injective_linear_attention, relu_linear_attention,
                                          taylor_linear_attention)
from plugins.ops.neighborhood import neighborhood_attention_2d, neighborhood_backend
from plugins.ops.recurrence import linear_recurrence
from plugins.ops.reflect_pad import reflect_pad_2d
from plugins.ops.relative_attention import relative_attention_2d
from plugins.ops.routing import bilevel_routing_attention
from plugins.ops.selective_scan import cross_merge, cross_scan, selective_scan
from plugins.ops.strided_sparse import s2_attention_2d
from plugins.ops.window import window_attention_2d

CUDA = torch.cuda.is_available()
#: (device, dtype): the CPU's fp32 is the reference, so the CPU runs bf16 autocast only
MODES = [pytest.param('cpu', torch.bfloat16, id='cpu-bf16')] + [
    pytest.param('cuda', dtype, id=f'cuda-{name}',
                 marks=pytest.mark.skipif(not CUDA, reason='no CUDA device'))
    for name, dtype in (('fp32', torch.float32), ('fp16', torch.float16),
                        ('bf16', torch.bfloat16))]
#: largest |device - reference| / max |reference| per dtype (fp32 on CUDA: TF32 is off here)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}


@pytest.fixture(autouse=True)
def _no_tf32():
    """CUDA fp32 means fp32: TF32 matmuls / convolutions (10-bit mantissa) are turned off."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _outputs(out):
    return [o for o in (out if isinstance(out, (tuple, list)) else [out])]


def run_on(case, device: str, dtype: torch.dtype):
    """``case(to)`` with its inputs built from seed 0 and moved by ``to`` to ``device``
    (``to.device``: for modules), under
    autocast at ``dtype`` (plain fp32 for float32); outputs back on the CPU in fp32."""
    torch.manual_seed(0)

    def to(t):
        return t.to(device)
    to.device = device
    with torch.no_grad(), torch.autocast(device, dtype=dtype,
                                         enabled=dtype != torch.float32):
        return [o.float().cpu() for o in _outputs(case(to))]


#: share of tokens a routed module may place differently in low precision (below)
ROUTED_TOKENS = 0.15


def assert_same_numbers(case, device, dtype, routed: bool = False):
    """Every output of ``case`` on ``device`` at ``dtype`` within the dtype's tolerance of the
    CPU fp32 one. ``routed``: the module routes tokens by a discrete choice (top-k regions or
    cluster members); in fp16 / bf16 a near tie of its (fp32) routing scores, computed from
    low-precision queries, can pick another region for a few tokens, so there at most
    ``ROUTED_TOKENS`` of the positions (``(B, C, H, W)`` outputs) may differ beyond it."""
    refs = run_on(case, 'cpu', torch.float32)
    outs = run_on(case, device, dtype)
    assert len(outs) == len(refs)
    tol = TOLERANCE[dtype]
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        err = (out - ref).abs() / ref.abs().max().clamp_min(1e-12)
        if routed and dtype != torch.float32:
            moved = float((err.amax(1) > tol).float().mean())
            assert moved <= ROUTED_TOKENS, f'{moved:.0%} of the tokens differ by > {tol:g}'
        else:
            assert float(err.max()) <= tol, f'relative error {float(err.max()):.2e} > {tol:g}'


def _qkv(to, h=12, w=14, heads=2, d=8, b=1):
    return [to(torch.randn(b, heads, h, w, d)) for _ in range(3)]


def _seq(to, n=40, heads=2, d=8):
    return [to(torch.randn(1, heads, n, d)) for _ in range(3)]


def _scan_inputs(to, batch=1, dim=8, length=37, n=4, groups=2):
    return dict(u=to(torch.randn(batch, dim, length)), delta=to(torch.randn(batch, dim, length)),
                A=to(-torch.exp(torch.randn(dim, n))), B=to(torch.randn(batch, groups, n, length)),
                C=to(torch.randn(batch, groups, n, length)), D=to(torch.randn(dim)),
                z=to(torch.randn(batch, dim, length)), delta_bias=to(torch.randn(dim)),
                delta_softplus=True)


#: one call of every op of plugins/ops with small inputs: ``to`` moves a CPU tensor to the device
OPS = {
    'neighborhood banded (rpb)': lambda to: neighborhood_attention_2d(
        *_qkv(to), 5, rpb=to(torch.randn(2, 9, 9))),
    'neighborhood generic (dilation, stride)': lambda to: neighborhood_attention_2d(
        *_qkv(to), 3, dilation=2, stride=2),
    'window shifted (rpb)': lambda to: window_attention_2d(
        *_qkv(to), 4, 2, to(torch.randn(7 * 7, 2))),
    'halo': lambda to: halo_attention_2d(
        *_qkv(to), 4, 1, to(torch.randn(11, 8) * 0.3), to(torch.randn(11, 8) * 0.3)),
    'bilevel routing': lambda to: bilevel_routing_attention(*_qkv(to, 8, 8), 2, 2),
    'band': lambda to: band_attention_2d(*_qkv(to), (1, 2)),
    'relative': lambda to: relative_attention_2d(
        *_qkv(to, 6, 7), to(torch.randn(2, 11, 8) * 0.3), to(torch.randn(2, 13, 8) * 0.3)),
    's2 strided sparse': lambda to: s2_attention_2d(*_qkv(to, heads=4), (2, 2), 1, (2, 2)),
    'global (SDPA)': lambda to: global_attention(*_seq(to)),
    'dense with bias': lambda to: dense_attention(*_seq(to), bias=to(torch.randn(1, 2, 40, 40))),
    'lightning (causal)': lambda to: lightning_attention(
        *_seq(to), to(torch.tensor([0.5, 0.9])), 16, causal=True),
    'injective linear': lambda to: injective_linear_attention(*_seq(to), 8 ** -0.5),
    'relu linear': lambda to: relu_linear_attention(
        *_seq(to), to(torch.ones(2, 1, 1)), denom_min=1.0),
    'taylor linear': lambda to: taylor_linear_attention(*_seq(to)),
    'selective scan': lambda to: selective_scan(**_scan_inputs(to), chunk_size=8),
    'cross scan / merge': lambda to: cross_merge(
        cross_scan(to(torch.randn(1, 4, 5, 6))) * 2, 5, 6),
    'linear recurrence': lambda to: linear_recurrence(
        to(torch.rand(2, 3, 30)), to(torch.randn(2, 3, 30))),
    'fft causal conv': lambda to: fft_causal_conv2d(
        to(torch.randn(1, 3, 6, 7)), to(torch.randn(3, 6, 7)), 0.3),
    'fft same conv': lambda to: fft_conv2d_same(
        to(torch.randn(1, 3, 6, 7)), to(torch.randn(3, 5, 5))),
    'dilated depthwise conv': lambda to: dilated_depthwise_conv2d(
        to(torch.randn(1, 4, 9, 10)), to(torch.randn(4, 1, 3, 3)), to(torch.randn(4)), 2),
    'reflect pad': lambda to: reflect_pad_2d(to(torch.randn(1, 2, 5, 6)), 2, 3, 1, 4),
}


@pytest.mark.parametrize('device,dtype', MODES)
@pytest.mark.parametrize('name', list(OPS))
def test_op_gives_the_cpu_fp32_numbers(name, device, dtype):
    assert_same_numbers(OPS[name], device, dtype)


def _mixer_cases():
    from benchmarks.mixers import collect_cases
    return {case.name: case for case in collect_cases()}


MIXERS = _mixer_cases()


@pytest.mark.parametrize('device,dtype', MODES)
@pytest.mark.parametrize('name', list(MIXERS))
def test_mixer_gives_the_cpu_fp32_numbers(name, device, dtype):
    """Every mixer of the benchmark (``benchmarks/mixer_cases``), 16 x 20 tokens, C = 32."""
    torch.manual_seed(0)
    mixer = MIXERS[name].build(32, 2).eval()

    def case(to):
        return mixer.to(to.device)(to(torch.randn(1, 32, 16, 20)))
    assert_same_numbers(case, device, dtype, routed='Routing' in name)


#: backbones whose special paths matter on a device (NA, windows, SS2D, routing, tokens);
#: on CUDA every architecture of reference.yaml runs
CPU_BACKBONES = ('NAT', 'DaViT', 'MambaYOLO', 'BiFormer')
#: backbones that route tokens by a discrete choice (top-k regions): see assert_same_numbers
ROUTED_BACKBONES = ('BiFormer', )


def _backbone_params():
    from plugins.backbones.reference import load_reference
    params = []
    for name in load_reference():
        if name in CPU_BACKBONES:
            params.append(pytest.param(name, 'cpu', torch.bfloat16, id=f'{name}-cpu-bf16'))
        params += [pytest.param(name, 'cuda', dtype, id=f'{name}-cuda-{dname}',
                                marks=pytest.mark.skipif(not CUDA, reason='no CUDA device'))
                   for dname, dtype in (('fp32', torch.float32), ('fp16', torch.float16),
                                        ('bf16', torch.bfloat16))]
    return params


@pytest.mark.parametrize('name,device,dtype', _backbone_params())
def test_backbone_gives_the_cpu_fp32_numbers(name, device, dtype):
    """The contract test's small model of the architecture, eval mode, a 64 x 96 image."""
    from tests.backbones.test_contract import build
    torch.manual_seed(0)
    model = build(name).eval()

    def case(to):
        return model.to(to.device)(to(torch.randn(1, 3, 64, 96)))
    assert_same_numbers(case, device, dtype, routed=name in ROUTED_BACKBONES)


def test_neighborhood_attention_takes_the_toolkit_paths_on_the_cpu():
    q = torch.randn(1, 2, 12, 14, 8)
    assert neighborhood_backend(q, 5) == 'banded'
    assert neighborhood_backend(q, 3, stride=2) == 'generic'
    assert neighborhood_backend(q, 5, use_natten=False) == 'banded'


@pytest.mark.skipif(not CUDA, reason='no CUDA device')
def test_neighborhood_attention_uses_natten_on_cuda_where_it_is_installed():
    from plugins.ops.neighborhood import _natten
    q = torch.randn(1, 2, 12, 14, 8, device='cuda')
    want = 'natten' if _natten() is not None else 'banded'
    assert neighborhood_backend(q, 5) == want
    assert neighborhood_backend(q, 5, rpb=torch.zeros(2, 9, 9, device='cuda')) == 'banded'


#: mixers with a hand-written backward (an autograd Function that autocast does not reach)
OWN_BACKWARD = ['RATAttention p8', 'CoreContextAwareAttention p4 r1', 'HyperZZWMixer']


@pytest.mark.parametrize('name', OWN_BACKWARD)
@pytest.mark.parametrize('device,dtype', MODES)
def test_hand_written_backward_gives_the_fp32_gradients_under_autocast(name, device, dtype):
    from benchmarks.mixers import collect_cases
    case = next(c for c in collect_cases() if c.name == name)
    torch.manual_seed(0)
    module, x = case.build(32, 2), torch.randn(1, 32, 12, 20)
    grads = []
    for where, at in (('cpu', torch.float32), (device, dtype)):
        xi = x.to(where).requires_grad_()
        with torch.autocast(where, dtype=at, enabled=at != torch.float32):
            out = module.to(where)(xi)
        out.float().pow(2).sum().backward()
        grads.append(xi.grad.float().cpu())
    err = (grads[1] - grads[0]).abs().max() / grads[0].abs().max()
    assert float(err) <= TOLERANCE[dtype], f'relative error {float(err):.2e}'
