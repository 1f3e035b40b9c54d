"""SG-Former: presets, the backbone contract, the token reallocation and windows at any size, and
loading the official release's key layout.

Parity with the official ``sgformer.py`` (OliverRensu/SG-Former, run outside the repository with
timm, the same weights converted by the ``sgformer`` converter, LayerNorm / bias parameters
perturbed so that each matters; fp32, eval, batch 2 at 224x224): max abs diff 0.0 on all four
stage outputs of S, M and B. The official code runs at 224 only, so the check cannot live here.
"""
import math
import re

import pytest
import torch

from plugins.backbones.sgformer import (MERGE_SIZES, HybridScaleAttention, SelfGuidedAttention,
                                        SGFormer)
from plugins.ops.global_attention import dense_attention
from plugins.utils.checkpoint import load_pretrained
from plugins.utils.converters import get_converter

from .contract import check_official_layout_loads

#: a shallow S (same widths, heads and reductions, 2/2/2/1 blocks) for the costly checks
SHALLOW_S = dict(SGFormer.arch_zoo['s'], depths=[2, 2, 2, 1])


def test_position_embedding_is_interpolated_to_the_grid():
    backbone = SGFormer(SHALLOW_S)
    assert backbone.position_embedding((56, 56)) is backbone.stages[0].pos_embed
    assert backbone.position_embedding((25, 33)).shape == (1, 25 * 33, 64)


def _window_mask(h, w, ws=7):
    """True where query and key share a 7x7 window (the pattern of the local heads)."""
    ids = torch.arange(h)[:, None] // ws * math.ceil(w / ws) + torch.arange(w)[None] // ws
    ids = ids.flatten()
    return ids[:, None] == ids[None]


@pytest.mark.parametrize('size', [(14, 21), (9, 10), (3, 5)])
def test_window_attention_pads_with_masked_keys(size):
    """The local heads equal dense attention restricted to each 7x7 window (padded windows
    included), and the local significance of a key is the mean attention it gets from the real
    queries of its window."""
    torch.manual_seed(0)
    attn = HybridScaleAttention(32, 4, sr_ratio=2)
    h, w = size
    q, k, v = (torch.randn(2, 2, h * w, 16) for _ in range(3))
    out, sig = attn.window_attention(q, k, v, size)
    mask = _window_mask(h, w)
    ref = dense_attention(q, k, v, mask=mask, scale=attn.scale)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(2, h * w, 32))
    logits = (q @ k.transpose(-2, -1)) * attn.scale
    probs = logits.masked_fill(~mask, float('-inf')).softmax(-1).mean(1)  # B N N
    ref_sig = (probs.sum(1) / mask.sum(0)).view(2, h, w)
    torch.testing.assert_close(sig, ref_sig)


@pytest.mark.parametrize('sr,n', [(8, 3136), (8, 1000), (4, 50), (2, 37)])
def test_reallocation_merges_sorted_groups(sr, n):
    """Tokens sorted by significance, split as the official code (quarter / half / quarter, or
    halves), each part merged in consecutive groups of MERGE_SIZES; an incomplete last group
    merges the tokens it has (zero-filled)."""
    torch.manual_seed(0)
    attn = SelfGuidedAttention(16, 2, sr_ratio=sr)
    for name, param in attn.named_parameters():
        if name[0] == 'f':
            torch.nn.init.normal_(param)
    tokens, significance = torch.randn(1, n, 16), torch.rand(1, n)
    order = significance[0].argsort()
    bounds = [0, n // 4, n // 4 * 3, n] if len(MERGE_SIZES[sr]) == 3 else [0, n // 2, n]
    expected = []
    for i, size in enumerate(MERGE_SIZES[sr]):
        part = tokens[0, order[bounds[i]:bounds[i + 1]]]
        merge = getattr(attn, f'f{i + 1}')
        for start in range(0, len(part), size):
            group = part[start:start + size]
            expected.append(merge.weight[0, :len(group)] @ group + merge.bias)
    merged = attn.reallocate(tokens, significance)
    torch.testing.assert_close(merged[0], torch.stack(expected))
    if (sr, n) == (8, 3136):  # 224x224: the official counts, 4 + 28 + 28 merged tokens
        assert merged.shape[1] == 60


def test_guided_block_needs_a_significance_map():
    with pytest.raises(ValueError, match='significance map'):
        SelfGuidedAttention(16, 2, sr_ratio=4)(torch.randn(1, 4, 16), (2, 2), None)


def official_state_dict(backbone, head=False):
    """The same weights under the official keys (``pos_embed``, ``patch_embed{i}.conv.0.c``,
    ``block{i}.{j}``, ``norm{i}``, ``mlp.dwconv.dwconv``; ``head`` for the ImageNet model)."""
    inverse = [
        (r'^stages\.0\.pos_embed$', lambda m: 'pos_embed'),
        (r'^(stages\.\d\.patch_embed\..*)\.conv\.(weight)$', lambda m: f'{m.group(1)}.c.weight'),
        (r'^(stages\.\d\.patch_embed\..+)\.norm\.', lambda m: f'{m.group(1)}.bn.'),
        (r'^stages\.(\d)\.patch_embed\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.'),
        (r'^stages\.(\d)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.'),
        (r'\.mlp\.dwconv\.', lambda m: '.mlp.dwconv.dwconv.'),
    ]
    out = {}
    for key, value in backbone.state_dict().items():
        for pattern, repl in inverse:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    if head:
        dim = backbone.stage_channels[-1]
        out.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.zeros(1000)})
    return out


def test_official_key_layout_loads_through_the_converter(tmp_path):
    official = official_state_dict(SGFormer(SHALLOW_S))
    for key in ('pos_embed', 'patch_embed1.conv.0.c.weight', 'patch_embed1.conv.4.bn.bias',
                'patch_embed1.norm.weight', 'patch_embed2.conv2.c.weight',
                'patch_embed4.conv3.bn.weight', 'block1.1.attn.f1.weight',
                'block3.0.attn.q1.weight', 'block4.0.attn.kv.weight',
                'block1.0.mlp.dwconv.dwconv.weight', 'norm4.bias'):
        assert key in official, key
    check_official_layout_loads(lambda **kw: SGFormer(SHALLOW_S, **kw), official_state_dict,
                                tmp_path)


def test_imagenet_checkpoint_reports_only_the_classifier(tmp_path):
    path = tmp_path / 'sgformer.pth'
    torch.save(dict(model=official_state_dict(SGFormer(SHALLOW_S), head=True)), path)
    report = load_pretrained(SGFormer(SHALLOW_S), str(path), convert=get_converter('sgformer'))
    assert sorted(report['unexpected']) == ['head.bias', 'head.weight']
    assert report['missing'] == [] and report['mismatched'] == []


def test_bad_arguments_are_clear_errors():
    base = SGFormer.arch_zoo['s']
    with pytest.raises(ValueError, match='one value per stage'):
        SGFormer(dict(base, depths=[2, 4, 16]))
    with pytest.raises(ValueError, match='sr_ratios must be 1 or one of'):
        SGFormer(dict(base, sr_ratios=[8, 4, 3, 1]))
    with pytest.raises(ValueError, match='num_heads must be even'):
        SGFormer(dict(base, num_heads=[1, 4, 8, 16]))


def test_chunked_attention_equals_one_chunk(monkeypatch):
    """Long maps attend in query chunks; maps up to QUERY_CHUNK tokens (all of them at 224, where
    the official numbers are reproduced bit for bit) in one."""
    import plugins.backbones.sgformer as sgformer
    assert sgformer.QUERY_CHUNK >= 56 * 56
    q, k, v = torch.randn(2, 2, 50, 8), torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    whole = sgformer.softmax_attention(q, k, v, 0.3, key_significance=True)
    monkeypatch.setattr(sgformer, 'QUERY_CHUNK', 16)
    chunked = sgformer.softmax_attention(q, k, v, 0.3, key_significance=True)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b)
