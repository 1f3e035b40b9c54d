"""CombinerAttention (Fixed and Axial) against the explicit N x N attention matrix its
factorisation implies (Combiner Eq. 7-9): each row is a probability distribution over the real
tokens, out = A V."""
import pytest
import torch

from plugins.mixers.combiner import CombinerAttention
from plugins.registry import MODELS

from .mixer_checks import compare_bf16, compare_parameter_grads, compare_with_reference, randomize_

SIZES = [(7, 9), (11, 13), (1, 1), (2, 5)]


def _qkv(m, x):
    b, c, h, w = x.shape
    q, k, v = m.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, m.num_heads, -1).permute(
        2, 0, 3, 1, 4)
    return q * m.head_dim ** -0.5, k, v                                       # B heads N d


def fixed_matrix(q, k, h, w, window):
    """A for Combiner-Fixed: direct keys in the own window; every window s (own included) as an
    abstraction with key max(K_s), spread over s by softmax_j(max(Q_s) . k_j)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    win = ((ys // window[0]) * (-(-w // window[1])) + xs // window[1]).flatten()   # N
    wins = torch.unique(win)
    member = win[None, :] == wins[:, None]                                    # S N
    neg = torch.finfo(q.dtype).min
    q_max = torch.stack([q[..., m, :].amax(-2) for m in member], 2)           # B h S d
    k_max = torch.stack([k[..., m, :].amax(-2) for m in member], 2)
    inner = torch.einsum('bhsd,bhnd->bhsn', q_max, k).masked_fill(~member, neg).softmax(-1)
    direct = (q @ k.transpose(-1, -2)).masked_fill(win[:, None] != win[None], neg)
    abstract = q @ k_max.transpose(-1, -2)                                    # B h N S
    p = torch.cat([direct, abstract], -1).softmax(-1)
    n = q.shape[-2]
    return p[..., :n] * (win[:, None] == win[None]) + p[..., n:] @ inner


def _column_parts(qm, km, below):
    """Parts of every column c' above (``below``: below) every row r, each as a pooled key
    ``max_S K`` (B, h, r, c', d), its spread ``softmax_{y in S}(max_S Q . k_(y, c'))``
    (B, h, r, c', y) and whether it is non-empty (r,)."""
    n = qm.shape[2]
    y, r = torch.arange(n)[None, :], torch.arange(n)[:, None]
    inside = y > r if below else y < r                                        # r y
    neg = torch.tensor(float('-inf'), dtype=qm.dtype)
    sel = inside[:, :, None, None]
    q_pool = torch.where(sel, qm[:, :, None], neg).amax(3)                     # B h r c' d
    k_pool = torch.where(sel, km[:, :, None], neg).amax(3)
    nonempty = inside.any(-1)
    q_pool = torch.where(nonempty[:, None, None], q_pool, torch.zeros_like(q_pool))
    k_pool = torch.where(nonempty[:, None, None], k_pool, torch.zeros_like(k_pool))
    inner = torch.einsum('bhrcd,bhycd->bhrcy', q_pool, km)
    inner = inner.masked_fill(~inside[:, None, :], float('-inf')).softmax(-1)
    return k_pool, torch.nan_to_num(inner), nonempty


def axial_matrix(q, k, h, w):
    """A for Combiner-Axial (bidirectional): direct keys in the query's row and column (itself
    once); for every column c', the parts above and below the query's row; for every row r', the
    parts left and right of its column; a part S has key max_S(K), spread over S by
    softmax_j(max_S(Q) . k_j); empty parts are absent. ``A: (B, h, H, W, H, W)`` -> (B, h, N, N)."""
    b, nh, n, d = q.shape
    qm, km = q.view(b, nh, h, w, d), k.view(b, nh, h, w, d)
    qt, kt = qm.transpose(2, 3), km.transpose(2, 3)                           # rows <-> columns
    row = torch.einsum('bhrcd,bhrxd->bhrcx', qm, km)
    col = torch.einsum('bhrcd,bhycd->bhrcy', qm, km).masked_fill(
        torch.eye(h, dtype=torch.bool)[:, None, :], float('-inf'))
    logits, inners = [row, col], []
    for below in (False, True):  # parts of columns, per query row
        k_pool, inner, nonempty = _column_parts(qm, km, below)
        logit = torch.einsum('bhrcd,bhred->bhrce', qm, k_pool)
        logits.append(logit.masked_fill(~nonempty[:, None, None], float('-inf')))
        inners.append(inner)                                                  # B h r c' y
    for right in (False, True):  # parts of rows, per query column
        k_pool, inner, nonempty = _column_parts(qt, kt, right)                # B h c r' d
        logit = torch.einsum('bhrcd,bhcsd->bhrcs', qm, k_pool)
        logits.append(logit.masked_fill(~nonempty[None, :, None], float('-inf')))
        inners.append(inner)                                                  # B h c r' x
    sizes = [t.shape[-1] for t in logits]
    p_row, p_col, p_up, p_down, p_left, p_right = torch.cat(logits, -1).softmax(-1).split(
        sizes, -1)
    a = torch.einsum('bhrcx,ry->bhrcyx', p_row, torch.eye(h, dtype=q.dtype))
    a = a + torch.einsum('bhrcy,cx->bhrcyx', p_col, torch.eye(w, dtype=q.dtype))
    for p, inner in ((p_up, inners[0]), (p_down, inners[1])):
        a = a + torch.einsum('bhrce,bhrey->bhrcye', p, inner)
    for p, inner in ((p_left, inners[2]), (p_right, inners[3])):
        a = a + torch.einsum('bhrcs,bhcsx->bhrcsx', p, inner)
    return a.reshape(b, nh, n, n)


def combiner_reference(m, x):
    b, c, h, w = x.shape
    q, k, v = _qkv(m, x)
    a = fixed_matrix(q, k, h, w, m.window_size) if m.mode == 'fixed' else axial_matrix(q, k, h, w)
    torch.testing.assert_close(a.sum(-1), torch.ones_like(a[..., 0]))       # full support
    out = m.proj((a @ v).transpose(1, 2).reshape(b, h * w, c))
    return out.transpose(1, 2).reshape(b, c, h, w)


def _mixer(**kw):
    return randomize_(CombinerAttention(16, 2, **kw), 0.3)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('window', [3, (2, 4)])
def test_fixed_matches_explicit_attention_matrix(size, window):
    compare_with_reference(_mixer(mode='fixed', window_size=window), combiner_reference,
                           torch.randn(2, 16, *size))


@pytest.mark.parametrize('size', [(7, 9), (6, 4), (1, 1), (1, 5), (4, 1)])
def test_axial_matches_explicit_attention_matrix(size):
    compare_with_reference(_mixer(mode='axial'), combiner_reference, torch.randn(2, 16, *size))


@pytest.mark.parametrize('mode', ['fixed', 'axial'])
def test_parameter_gradients_match_reference(mode):
    compare_parameter_grads(_mixer(mode=mode, window_size=3), combiner_reference,
                            torch.randn(2, 16, 5, 7))


def test_eval_is_deterministic():
    m = _mixer().eval()
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize('kw,match', [(dict(num_heads=3), 'divisible'),
                                      (dict(mode='rowmajor'), 'mode'),
                                      (dict(window_size=0), 'window_size')])
def test_bad_arguments_are_refused(kw, match):
    args = dict(dim=16, num_heads=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        CombinerAttention(**args)


@pytest.mark.parametrize('mode', ['fixed', 'axial'])
def test_builds_from_the_registry_with_dim_and_heads_only(mode):
    m = MODELS.build(dict(type='CombinerAttention', dim=32, num_heads=4, mode=mode))
    for size in [(1, 1), (9, 11)]:
        assert m(torch.randn(1, 32, *size)).shape == (1, 32, *size)


@pytest.mark.parametrize('mode', ['fixed', 'axial'])
def test_bfloat16_close_to_float32(mode):
    compare_bf16(randomize_(CombinerAttention(32, 4, mode=mode), 0.1), torch.randn(2, 32, 13, 21))
