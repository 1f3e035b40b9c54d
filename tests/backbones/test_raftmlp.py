"""RaftMLP: the official key layout, the raft token mixing against the official layouts written
out, the cross-scale embedding, the pre-training-grid resizing (and the 'window' option), the
stride-4 map (parity with the official code: see the module docstring)."""
import re

import pytest
import torch
import torch.nn.functional as F

from plugins.backbones.raftmlp import RaftBlock, RaftMLP
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

SMALL = dict(embed_dims=[8, 16, 16, 32], depths=[1, 1, 2, 1])


def randomize_(module):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'norm' in name:
                p.copy_(torch.rand(p.shape, generator=g) + (.5 if name.endswith('weight') else -.5))
    return module


def official_state_dict(backbone):
    """The same weights under the official ``RaftMLP`` keys (``levels.i.fn.k``) with its classifier
    (``heads.0.1`` LayerNorm, ``classifier``)."""
    parts = {'vertical': '1', 'horizontal': '3', 'channel': '5'}
    layers = {'norm.': 'norm.', 'fc1.': 'fn.0.', 'fc2.': 'fn.3.', 'mlp.fc1.': 'fn.0.',
              'mlp.fc2.': 'fn.3.'}
    out = {}
    for key, value in backbone.state_dict().items():
        m = re.match(r'^stages\.(\d)\.blocks\.(\d+)\.(\w+)\.(.*)$', key)
        if m:
            level, d, part, rest = m.groups()
            layer = next(k for k in sorted(layers, key=len, reverse=True) if rest.startswith(k))
            new = layers[layer]
            if part != 'channel' and layer == 'norm.':
                new = 'norm.1.'
            key = f'levels.{level}.fn.{int(d) + 2}.{parts[part]}.{new}{rest[len(layer):]}'
        else:
            key = re.sub(r'^stages\.(\d)\.embed\.', r'levels.\1.fn.0.', key)
        out[key] = value.clone()
    dim = backbone.stage_channels[-1]
    out.update({'heads.0.1.weight': torch.ones(dim), 'heads.0.1.bias': torch.zeros(dim),
                'classifier.weight': torch.randn(1000, dim), 'classifier.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(RaftMLP(SMALL))
    assert {'levels.0.fn.0.fc.weight', 'levels.2.fn.3.1.norm.1.weight', 'levels.2.fn.3.3.fn.0.bias',
            'levels.3.fn.2.5.norm.weight', 'levels.1.fn.2.5.fn.3.weight'} <= set(official)
    check_official_layout_loads(lambda **kw: randomize_(RaftMLP(SMALL, **kw)), official_state_dict,
                                tmp_path)


def test_official_checkpoint_as_saved_reports_only_the_classifier(tmp_path):
    """The official training (ignite ``Checkpoint({'model': model})``) saves the bare state dict."""
    path = tmp_path / 'last_model_0.pt'
    torch.save(official_state_dict(RaftMLP(SMALL)), path)
    report = load_pretrained(RaftMLP(SMALL), str(path), convert=get_converter('raftmlp'))
    assert sorted(report['unexpected']) == ['classifier.bias', 'classifier.weight',
                                           'heads.0.1.bias', 'heads.0.1.weight']
    assert report['missing'] == [] and report['mismatched'] == []


def official_token_mixing(block, x):
    """The official ``RaftShrink -> PermutedBlock -> Rearrange -> PermutedBlock -> RaftExpansion``
    on a channels-last map at the pre-training grid, each einops pattern written out."""
    b, h, w, c = x.shape
    r, co = block.vertical.raft, c // block.vertical.raft

    def permuted_block(mix, t, o1, o2):  # t: b (co o1) (r o2); LN over (co r) per (o1, o2)
        n = t.view(b, co, o1, r, o2).permute(0, 2, 4, 1, 3).reshape(b, o1 * o2, co * r)
        n = mix.norm(n).view(b, o1, o2, co, r).permute(0, 3, 1, 4, 2).reshape(b, co * o1, r * o2)
        return t + mix.fc2(mix.act(mix.fc1(n)))

    t = x.view(b, h, w, r, co).permute(0, 4, 2, 3, 1).reshape(b, co * w, r * h)  # shrink
    t = permuted_block(block.vertical, t, w, h)
    t = t.view(b, co, w, r, h).permute(0, 1, 4, 3, 2).reshape(b, co * h, r * w)
    t = permuted_block(block.horizontal, t, h, w)
    return t.view(b, co, h, r, w).permute(0, 2, 4, 3, 1).reshape(b, h, w, c)      # expansion


def make_block(token_grid='resize', channels=8, length=4):
    return randomize_(RaftBlock(channels, length, raft_size=2, token_expansion=2,
                                channel_expansion=4, token_grid=token_grid)).eval()


def test_raft_token_mixing_equals_the_official_layouts():
    block = make_block()
    x = torch.randn(2, 4, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(block.horizontal(block.vertical(x)),
                                   official_token_mixing(block, x))


def bicubic(x, size):
    return F.interpolate(x.permute(0, 3, 1, 2), size, mode='bicubic',
                         align_corners=False).permute(0, 2, 3, 1)


def test_resize_mixes_tokens_on_the_pretraining_grid_and_resizes_back():
    """Official RaftShrink / RaftExpansion: both token mixings (residuals included) run on the map
    resized to the pre-training grid; the channel MLP at the map's size."""
    block = make_block('resize')
    x = torch.randn(1, 5, 9, 8)
    with torch.no_grad():
        mixed = bicubic(official_token_mixing(block, bicubic(x, (4, 4))), (5, 9))
        torch.testing.assert_close(block(x), block.channel(mixed))


def test_window_mixes_tokens_natively_in_windows_of_the_pretraining_length():
    block = make_block('window')
    x = torch.randn(1, 9, 5, 8)
    mix = block.vertical
    with torch.no_grad():
        normed = F.layer_norm(x, (8, ), mix._affine(mix.norm.weight), mix._affine(mix.norm.bias))
        normed = F.pad(normed, (0, 0, 0, 0, 0, 3))                         # 9 -> 12 rows
        expected = x.clone()
        for w in range(5):
            for j in range(4):
                for n in range(3):
                    v = normed[0, 4 * n:4 * n + 4, w, [j, 4 + j]].t().reshape(-1)  # (g, row)
                    y = mix.fc2(mix.act(mix.fc1(v))).view(2, 4).t()
                    for i, row in enumerate(range(4 * n, min(4 * n + 4, 9))):
                        expected[0, row, w, j] += y[i, 0]
                        expected[0, row, w, 4 + j] += y[i, 1]
        torch.testing.assert_close(mix(x), expected)


def test_window_and_resize_agree_on_the_pretraining_grid():
    resize = randomize_(RaftMLP(SMALL)).eval()
    window = RaftMLP(SMALL, token_grid='window').eval()
    window.load_state_dict(resize.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for a, b in zip(resize(x), window(x)):
            assert torch.equal(a, b)


def test_cross_scale_embedding_is_the_linear_layer_over_unfolded_patches():
    embed = RaftMLP(SMALL).stages[0].embed                              # kernels 4, 8; stride 4
    x = torch.randn(2, 3, 16, 24)
    patches = torch.cat([F.unfold(x, 4, stride=4), F.unfold(x, 8, stride=4, padding=2)], dim=1)
    expected = embed.fc(patches.transpose(1, 2)).transpose(1, 2).reshape(2, 8, 4, 6)
    torch.testing.assert_close(embed(x), expected)


def test_stride_4_map_is_the_level_0_embedding_of_the_image_resized_to_patch_multiples():
    """As the official detection backbone (hook on ``levels[0].fn[1]``); an image whose sides are
    not multiples of 4 is resized up to them (bicubic), as the official ``Level``."""
    backbone = RaftMLP(SMALL).eval()
    x = torch.randn(1, 3, 33, 50)
    with torch.no_grad():
        first = backbone(x)[0]
        resized = F.interpolate(x, (36, 52), mode='bicubic', align_corners=False)
        torch.testing.assert_close(first, backbone.stages[0].embed(resized))
        blocks = RaftMLP(SMALL, first_map='blocks').eval()
        blocks.load_state_dict(backbone.state_dict())
        out_blocks, out_embed = blocks(x), backbone(x)
    assert not torch.allclose(out_blocks[0], first)
    for a, b in zip(out_blocks[1:], out_embed[1:]):
        assert torch.equal(a, b)


def test_the_raft_norm_affine_keeps_the_official_channel_order():
    """The official PermutedBlock normalises channels in (j, g) order: its affine, loaded as it is,
    must act on channel g C / r + j."""
    block = make_block()
    x = torch.randn(1, 4, 4, 8)
    with torch.no_grad():
        expected = official_token_mixing(block, x)
        block.vertical.norm.weight.copy_(block.vertical._affine(block.vertical.norm.weight))
        assert not torch.allclose(block.horizontal(block.vertical(x)), expected)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="token_grid must be 'resize'"):
        RaftMLP(SMALL, token_grid='native')
    with pytest.raises(ValueError, match="first_map must be 'embedding'"):
        RaftMLP(SMALL, first_map='stem')
    with pytest.raises(ValueError, match='one entry per level'):
        RaftMLP(dict(embed_dims=[8, 16], depths=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match='divisible by the raft size'):
        RaftMLP(dict(embed_dims=[9, 16, 16, 32], depths=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match='multiples of the smallest'):
        RaftMLP(SMALL, embed_kernels=((4, 6), (2, ), (2, ), (2, )))


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_flops_count_off_the_pretraining_grid_without_the_resizes():
    """The FLOP counter traces with jit, whose sizes are tensors: the resizes to the pre-training
    grid and back run as opaque nodes there (a resampling, not the paper's work), so a detection
    size counts instead of failing, the same token and channel MLPs as at 224."""
    from plugins.utils.flops import count_flops
    model = RaftMLP(arch='s').eval()
    at_224 = count_flops(model, (torch.rand(1, 3, 224, 224), ))
    odd = count_flops(model, (torch.rand(1, 3, 97, 131), ))
    assert at_224 == 2_100_818_944 and 0 < odd < at_224
