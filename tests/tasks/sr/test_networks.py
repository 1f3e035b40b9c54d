"""CATANet, DLGSANet and the mixer trunk: parameter counts, shapes, the paper's mechanisms."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from plugins.tasks.sr.dlgsanet import SparseGSA, dynamic_depthwise_conv, tlc_positions
from plugins.tasks.sr.reference import sr_presets


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('preset', sorted(sr_presets('CATANet')))
def test_catanet_parameter_count_matches_the_official_architecture(preset):
    ref = sr_presets('CATANet')[preset]
    assert n_params(MODELS.build(dict(type='CATANet', upscale=ref['upscale']))) == ref['params']


@pytest.mark.parametrize('preset', sorted(sr_presets('DLGSANet')))
def test_dlgsanet_parameter_count_matches_the_official_configs(preset):
    ref = sr_presets('DLGSANet')[preset]
    model = MODELS.build(dict(type='DLGSANet', arch=ref['arch'], upscale=ref['upscale']))
    assert n_params(model) == ref['params']


def test_the_issue_numbers_are_the_reference_numbers():
    assert [sr_presets('CATANet')[k]['params'] for k in ('x2', 'x3', 'x4')] == [
        477435, 549635, 535195]
    assert sr_presets('DLGSANet')['tiny-x2']['params'] == 565710
    assert sr_presets('DLGSANet')['light-x2']['params'] == 745188


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('size', [(13, 17), (29, 31)])
def test_catanet_output_is_scale_times_any_input_size(scale, size):
    # odd sizes, smaller and larger than the LRSA patches (16..28) and token groups
    model = MODELS.build(dict(type='CATANet', upscale=scale)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


def test_catanet_token_centres_change_in_training_only():
    model = MODELS.build(dict(type='CATANet', upscale=2))
    x = torch.rand(2, 3, 20, 20)
    model.train()
    model(x)
    tab = model.blocks[0].tab
    assert bool(tab.centers_initialized)
    before = tab.centers.clone()
    model(torch.rand(2, 3, 20, 20))
    assert not torch.equal(before, tab.centers)  # EMA of the refined centres
    model.eval()
    after_train = tab.centers.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(after_train, tab.centers)


def test_catanet_trains_end_to_end():
    model = MODELS.build(dict(type='CATANet', upscale=2)).train()
    out = model(torch.rand(2, 3, 18, 22))
    out.abs().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_dlgsanet_output_shape_for_odd_sizes_in_train_and_test(scale):
    model = MODELS.build(dict(type='DLGSANet', arch='tiny', upscale=scale, tlc_kernel=8))
    x = torch.rand(1, 3, 11, 19)
    assert model.train()(x).shape == (1, 3, 11 * scale, 19 * scale)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 3, 11 * scale, 19 * scale)


def naive_dynamic_conv(x, weight, k):
    b, c, h, w = x.shape
    g = weight.shape[1]
    xp = nn.functional.pad(x, (k // 2,) * 4)
    out = torch.zeros_like(x)
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                kern = weight[:, ch // (c // g), :, i, j].reshape(b, k, k)
                out[:, ch, i, j] = (xp[:, ch, i:i + k, j:j + k] * kern).sum((-2, -1))
    return out


@pytest.mark.parametrize('impl', ['shift', 'unfold'])
def test_dynamic_depthwise_conv_equals_the_per_pixel_definition(impl):
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    weight = torch.randn(2, 3, 9, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(dynamic_depthwise_conv(x, weight, 3, impl),
                               naive_dynamic_conv(x, weight, 3))


def test_dynamic_depthwise_conv_gradients_match_between_implementations():
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 25, 6, 6, dtype=torch.float64, requires_grad=True)
    g1 = torch.autograd.grad(dynamic_depthwise_conv(x, w, 5, 'shift').square().sum(), (x, w))
    g2 = torch.autograd.grad(dynamic_depthwise_conv(x, w, 5, 'unfold').square().sum(), (x, w))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_sparse_gsa_uses_relu_not_softmax():
    attn = SparseGSA(12, num_heads=2, tlc_kernel=None)
    qkv = torch.randn(1, 36, 5, 5)
    q, k, v = qkv.reshape(1, 3, 2, 6, 25).unbind(1)
    q, k = nn.functional.normalize(q, dim=-1), nn.functional.normalize(k, dim=-1)
    expected = (torch.relu(q @ k.transpose(-2, -1)) @ v).reshape(1, 12, 5, 5)
    torch.testing.assert_close(attn.attend(qkv), expected)


def test_tlc_equals_global_attention_when_the_image_fits_one_window():
    attn = SparseGSA(12, num_heads=2, tlc_kernel=16).eval()
    x = torch.randn(2, 12, 16, 10)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn.train()(x))


def test_tlc_windows_cover_the_image_and_end_at_the_border():
    for length, kernel in [(100, 48), (96, 48), (30, 48), (97, 96)]:
        starts = tlc_positions(length, kernel)
        k = min(length, kernel)
        assert starts[0] == 0 and starts[-1] + k == length
        assert all(b - a <= k for a, b in zip(starts, starts[1:]))


class LocalStandInMixer(nn.Module):
    """The mixer contract (B, C, H, W) -> (B, C, H, W) with Mixer(dim, num_heads, **params)."""

    def __init__(self, dim, num_heads, kernel_size=3):
        super().__init__()
        self.num_heads = num_heads
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x):
        return self.conv(x)


def test_mixer_trunk_takes_any_mixer_by_config():
    if 'SRTestStandInMixer' not in MODELS.module_dict:
        MODELS.register_module('SRTestStandInMixer', module=LocalStandInMixer)
    model = MODELS.build(dict(type='MixerSRNet', upscale=3, dim=16, num_heads=2, groups=2,
                              blocks=1, mixer=dict(type='SRTestStandInMixer', kernel_size=5)))
    assert model.groups[0].blocks[0].mixer.conv.kernel_size == (5, 5)
    assert model(torch.rand(1, 3, 9, 7)).shape == (1, 3, 27, 21)


def test_mixer_trunk_with_a_toolkit_mixer():
    model = MODELS.build(dict(type='MixerSRNet', upscale=2, dim=16, num_heads=2, groups=1,
                              blocks=1, mixer=dict(type='ChannelGroupAttention')))
    out = model(torch.rand(1, 3, 10, 13))
    assert out.shape == (1, 3, 20, 26)
    out.mean().backward()
