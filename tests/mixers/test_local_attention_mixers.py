"""Local and global attention mixers (NAT/DiNAT, Swin/DaViT windows, HiDiffusion MSW-MSA, HaloNet,
BiFormer, global MHSA): dense or official-formulation references, odd and tiny sizes, bf16, peers
with the same weights, registration."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks.mixer_cases.local_attention import (biformer_formulation, hidiffusion_formulation,
                                                    na_gather_formulation, timm_davit_window,
                                                    timm_halo, timm_swin_block_attention,
                                                    timm_vit_attention)
from benchmarks.peers import import_timm
from plugins.mixers.bilevel_routing import BiLevelRoutingAttention
from plugins.mixers.global_attention import GlobalSelfAttention
from plugins.mixers.halo import HaloAttention
from plugins.mixers.neighborhood import NeighborhoodAttention2d, clamp_dilation
from plugins.mixers.window import ModifiedShiftedWindowAttention, ShiftedWindowAttention
from plugins.ops.global_attention import dense_attention
from plugins.registry import MODELS

from .mixer_checks import compare_bf16, compare_with_reference, randomize_, rel_err

SIZES = [(13, 21), (5, 6), (14, 14)]
timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason='timm is not installed')


def _x(size, dim=16, b=2):
    return torch.randn(b, dim, *size)


# ------------------------------------------------------------------ neighborhood

@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('dilation', [1, 2])
def test_neighborhood_mixer_matches_gathered_neighbourhoods(size, dilation):
    m = randomize_(NeighborhoodAttention2d(16, 2, kernel_size=5, dilation=dilation,
                                           small_map='clamp'))
    compare_with_reference(m, lambda r, x: na_gather_formulation(r)(x), _x(size))


def test_neighborhood_mixer_clamps_dilation_on_small_maps():
    assert clamp_dilation(20, 7, 8) == 2 and clamp_dilation(5, 7, 4) == 1
    m = NeighborhoodAttention2d(16, 2, kernel_size=7, dilation=28, small_map='clamp')
    assert m(_x((9, 30))).shape == (2, 16, 9, 30)


@pytest.mark.parametrize('size,dilation', [((9, 13), 3), ((4, 6), 1), ((20, 3), 2)])
def test_neighborhood_mixer_pads_small_maps_as_the_official_releases(size, dilation):
    """NATTEN 0.14 / 0.15 (the releases' version): the input is zero-padded at the bottom / right
    to ``k x dilation`` before qkv, so padded tokens carry the qkv bias into real windows; the
    output is cropped."""
    m = randomize_(NeighborhoodAttention2d(16, 2, kernel_size=5, dilation=dilation))
    pad = (0, max(0, 5 * dilation - size[1]), 0, max(0, 5 * dilation - size[0]))
    compare_with_reference(
        m, lambda r, x: na_gather_formulation(r)(F.pad(x, pad))[:, :, :size[0], :size[1]],
        _x(size))


def test_neighborhood_mixer_bfloat16():
    compare_bf16(randomize_(NeighborhoodAttention2d(16, 2, 5, 2)), _x((13, 21)))


def test_neighborhood_mixer_has_nat_parameter_names():
    m = NeighborhoodAttention2d(64, 2, kernel_size=7)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        'qkv.weight': (192, 64), 'qkv.bias': (192,), 'rpb': (2, 13, 13),
        'proj.weight': (64, 64), 'proj.bias': (64,)}


# ------------------------------------------------------------------ windows

def swin_dense_reference(m, x):
    """Windows of the zero-padded input, Swin mask in the rolled frame, bias table, all explicit."""
    b, c, h, w = x.shape
    wh, ww = m.window_size
    sh, sw = m.shift_size
    t = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, (-w) % ww, 0, (-h) % wh))
    hp, wp = t.shape[1:3]
    q, k, v = m.qkv(t).view(b, hp * wp, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
    grid = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    ys, xs = [u.flatten() for u in grid]
    ry, rx = (ys - sh) % hp, (xs - sw) % wp
    mask = ((ry[:, None] // wh) == (ry[None] // wh)) & ((rx[:, None] // ww) == (rx[None] // ww))
    if sh or sw:
        lab = ((ry >= hp - wh).long() + (ry >= hp - sh).long()) * 3 + \
              (rx >= wp - ww).long() + (rx >= wp - sw).long()
        mask &= lab[:, None] == lab[None]
    bias = None
    if m.relative_position_bias_table is not None:
        iy, ix = ry % wh, rx % ww
        rel = (iy[:, None] - iy[None] + wh - 1) * (2 * ww - 1) + (ix[:, None] - ix[None] + ww - 1)
        bias = m.relative_position_bias_table[rel].permute(2, 0, 1)
    out = dense_attention(q, k, v, mask=mask, bias=bias)
    out = m.proj(out.transpose(1, 2).reshape(b, hp, wp, c))[:, :h, :w]
    return out.permute(0, 3, 1, 2)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('shift,rpb', [(0, False), (3, True), (2, False)])
def test_window_mixer_matches_dense_reference(size, shift, rpb):
    m = randomize_(ShiftedWindowAttention(16, 2, 7, shift, rel_pos_bias=rpb))
    compare_with_reference(m, swin_dense_reference, _x(size))


def test_window_mixer_bfloat16():
    compare_bf16(randomize_(ShiftedWindowAttention(16, 2, 7, 3)), _x((13, 21)))


@needs_timm
@pytest.mark.parametrize('size', [(14, 21), (13, 20)])
def test_window_mixer_equals_timm_davit_window_attention(size):
    m = ShiftedWindowAttention(16, 2, 7, rel_pos_bias=False)
    x = _x(size)
    assert rel_err(m(x), timm_davit_window(m)(x)) <= 1e-5


@needs_timm
def test_shifted_window_mixer_equals_timm_swin_on_whole_windows():
    """timm rolls before padding, official Swin detection code pads first (as we do): the two
    agree on maps of whole windows."""
    m = randomize_(ShiftedWindowAttention(16, 2, 7, 3), 0.1)
    x = _x((14, 21))
    assert rel_err(m(x), timm_swin_block_attention(m)(x)) <= 1e-5


@pytest.mark.parametrize('step', [0, 1, 2, 3])
def test_msw_msa_matches_hidiffusion_formulation(step):
    m = _Step(randomize_(ModifiedShiftedWindowAttention(16, 2)), step)
    compare_with_reference(m, lambda r, x: hidiffusion_formulation(r.inner, step)(x),
                           _x((14, 22)))


def msw_msa_dense_reference(m, x, step):
    """MSW-MSA from its definition on any map: a token attends to the real tokens of its window
    in the map padded to 2 x 2 windows and rolled by ``-shift`` (padded keys masked)."""
    b, c, h, w = x.shape
    wh, ww = -(-h // m.num_windows), -(-w // m.num_windows)
    sh, sw = (wh // 4) * step, (ww // 4) * step
    hp, wp = wh * m.num_windows, ww * m.num_windows
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    win = (((ys - sh) % hp) // wh * m.num_windows + ((xs - sw) % wp) // ww).flatten()
    t = x.flatten(2).transpose(1, 2)
    q, k, v = m.qkv(t).view(b, h * w, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
    out = dense_attention(q, k, v, mask=win[:, None] == win[None])
    return m.proj(out.transpose(1, 2).reshape(b, h * w, c)).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', [(13, 21), (14, 22), (5, 6), (1, 3)])
@pytest.mark.parametrize('step', [0, 3])
def test_msw_msa_matches_its_definition_on_any_map(size, step):
    m = _Step(randomize_(ModifiedShiftedWindowAttention(16, 2)), step)
    compare_with_reference(m, lambda r, x: msw_msa_dense_reference(r.inner, x, step), _x(size))


def test_msw_msa_any_size_and_random_steps():
    m = ModifiedShiftedWindowAttention(16, 2)
    torch.manual_seed(1)
    outs = {tuple(m(_x((13, 21), b=1).fill_(1.0)).shape) for _ in range(3)}
    assert outs == {(1, 16, 13, 21)}
    assert m(_x((1, 1))).shape == (2, 16, 1, 1)


def test_msw_msa_bfloat16():
    m = randomize_(ModifiedShiftedWindowAttention(16, 2))
    compare_bf16(_Step(m, 2), _x((13, 21)))


class _Step(torch.nn.Module):
    def __init__(self, inner, step):
        super().__init__()
        self.inner, self.step = inner, step

    def forward(self, x):
        return self.inner(x, step=self.step)


# ------------------------------------------------------------------ halo

@needs_timm
@pytest.mark.parametrize('size', [(8, 16), (16, 24)])
def test_halo_mixer_equals_timm_haloattn(size):
    m = randomize_(HaloAttention(16, 2, block_size=4, halo_size=1), 0.2)
    x = _x(size)
    peer = timm_halo(m)
    assert rel_err(m(x), peer(x)) <= 1e-5
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(2, 16, *size)
    (ga,) = torch.autograd.grad(m(x1), x1, g)
    (gb,) = torch.autograd.grad(peer(x2), x2, g)
    assert rel_err(ga, gb) <= 1e-5


def halo_mixer_reference(m, x):
    """Pad the map to block multiples (zeros after the 1x1 projections = zeros before them, no
    bias), run timm's formulation, crop."""
    h, w = x.shape[2:]
    bs = m.block_size
    peer = timm_halo(m).to(x.dtype)
    return peer(F.pad(x, (0, (-w) % bs, 0, (-h) % bs)))[:, :, :h, :w]


@needs_timm
@pytest.mark.parametrize('size', SIZES)
def test_halo_mixer_any_size_matches_padded_timm(size):
    m = randomize_(HaloAttention(16, 2, block_size=4, halo_size=1), 0.2)
    compare_with_reference(m, halo_mixer_reference, _x(size))


def test_halo_mixer_bfloat16():
    compare_bf16(randomize_(HaloAttention(16, 2, block_size=4, halo_size=2), 0.2), _x((13, 21)))


# ------------------------------------------------------------------ bi-level routing

@pytest.mark.parametrize('size', SIZES + [(28, 28)])
def test_routing_mixer_matches_official_formulation(size):
    m = randomize_(BiLevelRoutingAttention(16, 2, n_win=7, topk=4))
    compare_with_reference(m, lambda r, x: biformer_formulation(r)(x), _x(size))


def test_routing_mixer_has_official_parameter_names():
    m = BiLevelRoutingAttention(64, 2, n_win=7, topk=4, side_dwconv=5)
    assert set(m.state_dict()) == {'qkv.qkv.weight', 'qkv.qkv.bias', 'wo.weight', 'wo.bias',
                                   'lepe.weight', 'lepe.bias'}
    assert m.lepe.weight.shape == (64, 1, 5, 5)


def test_routing_mixer_bfloat16_runs_close():
    m = randomize_(BiLevelRoutingAttention(16, 2, n_win=2, topk=4))  # topk = all: no routing ties
    compare_bf16(m, _x((13, 21)))


# ------------------------------------------------------------------ global

def global_reference(m, x):
    b, c, h, w = x.shape
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, m.num_heads, -1).permute(
        2, 0, 3, 1, 4)
    out = m.proj(dense_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', SIZES)
def test_global_mixer_matches_dense_reference(size):
    compare_with_reference(randomize_(GlobalSelfAttention(16, 2)), global_reference, _x(size))


@needs_timm
def test_global_mixer_equals_timm_vit_attention():
    m = GlobalSelfAttention(16, 2)
    x = _x((13, 21))
    assert rel_err(m(x), timm_vit_attention(m)(x)) <= 1e-5


def test_global_mixer_bfloat16():
    compare_bf16(randomize_(GlobalSelfAttention(16, 2)), _x((13, 21)))


# ------------------------------------------------------------------ registry

@pytest.mark.parametrize('name', ['NeighborhoodAttention2d', 'ShiftedWindowAttention',
                                  'ModifiedShiftedWindowAttention', 'HaloAttention',
                                  'BiLevelRoutingAttention', 'GlobalSelfAttention'])
def test_mixer_builds_from_the_registry(name):
    m = MODELS.build(dict(type=name, dim=32, num_heads=4))
    assert m(torch.randn(1, 32, 9, 11)).shape == (1, 32, 9, 11)


def test_window_mixer_masking_padding_equals_the_op_on_the_unpadded_map():
    """mask_padding=True: padded keys are dropped, as window_attention_2d does for any size."""
    from plugins.ops.utils import merge_heads
    from plugins.ops.window import window_attention_2d
    m = randomize_(ShiftedWindowAttention(16, 2, 7, 3, mask_padding=True))
    x = _x((13, 21))
    b, _, h, w = x.shape
    qkv = m.qkv(x.permute(0, 2, 3, 1)).view(b, h, w, 3, m.num_heads, m.head_dim)
    q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)  # each B heads H W d
    ref = merge_heads(window_attention_2d(q, k, v, 7, 3, m.relative_position_bias_table))
    ref = m.proj(ref.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert rel_err(m(x), ref) <= 1e-5
