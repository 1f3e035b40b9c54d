"""Window attention (Swin W-MSA / SW-MSA, HiDiffusion MSW-MSA) equals the dense specification."""
import pytest
import torch

from plugins.ops.global_attention import dense_attention
from plugins.ops.utils import relative_position_index
from plugins.ops.window import msw_msa_shift, window_attention_2d


def window_reference(q, k, v, window, shift=(0, 0), table=None, shifted_mask=True):
    """Per token pair, from the definition: same window of the padded, rolled map; with a Swin
    mask, same region (bands [0, P-w), [P-w, P-s), [P-s, P) of the rolled frame); keys in padding
    excluded; bias = table[relative offset inside the window]."""
    b, nh, h, w, d = q.shape
    wh, ww = window
    sh, sw = shift
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ry, rx = ((ys - sh) % hp).flatten(), ((xs - sw) % wp).flatten()  # position in rolled frame
    same_win = ((ry[:, None] // wh) == (ry[None] // wh)) & ((rx[:, None] // ww) == (rx[None] // ww))
    mask = same_win
    if shifted_mask and (sh or sw):
        def band(r, p, win, s):
            return (r >= p - win).long() + (r >= p - s).long() if s else torch.zeros_like(r)
        lab = band(ry, hp, wh, sh) * 3 + band(rx, wp, ww, sw)
        mask = mask & (lab[:, None] == lab[None])
    bias = None
    if table is not None:
        iy, ix = ry % wh, rx % ww
        rel = (iy[:, None] - iy[None] + wh - 1) * (2 * ww - 1) + (ix[:, None] - ix[None] + ww - 1)
        bias = table[rel].permute(2, 0, 1)
    out = dense_attention(q.reshape(b, nh, h * w, d), k.reshape(b, nh, h * w, d),
                          v.reshape(b, nh, h * w, -1), mask=mask, bias=bias)
    return out.reshape(b, nh, h, w, -1)


def _qkv(h, w, heads=2, d=8, dtype=torch.float32):
    return [torch.randn(2, heads, h, w, d, dtype=dtype, requires_grad=True) for _ in range(3)]


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


CASES = [  # H, W, window, shift, with table, shifted mask
    (14, 14, 7, 0, False, True),
    (14, 21, 7, 3, True, True),
    (13, 21, 7, 0, True, True),  # padding
    (13, 21, 7, 3, True, True),  # padding and shift
    (5, 6, 7, 0, True, True),  # map smaller than one window
    (5, 6, 7, 3, False, True),
    (13, 21, (4, 6), (2, 3), True, True),
    (14, 22, (7, 11), (3, 5), False, False),  # MSW-MSA: cyclic, unmasked
    (13, 21, (7, 11), (3, 5), False, False),
]


@pytest.mark.parametrize('h,w,window,shift,with_table,shifted_mask', CASES)
def test_forward_and_input_gradients_match_dense_reference(h, w, window, shift, with_table,
                                                           shifted_mask):
    window = (window, window) if isinstance(window, int) else window
    shift = (shift, shift) if isinstance(shift, int) else shift
    q, k, v = _qkv(h, w)
    table = None
    if with_table:
        table = torch.randn((2 * window[0] - 1) * (2 * window[1] - 1), 2, requires_grad=True)
    out = window_attention_2d(q, k, v, window, shift, table, shifted_mask)
    ref = window_reference(q, k, v, window, shift, table, shifted_mask)
    assert _rel_err(out, ref) <= 1e-5
    g = torch.randn_like(out)
    inputs = [q, k, v] + ([table] if with_table else [])
    for a, b in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        assert _rel_err(a, b) <= 1e-5


def test_bfloat16_is_close_to_fp32_reference():
    q, k, v = _qkv(13, 21)
    table = torch.randn(13 * 13, 2)
    ref = window_reference(q, k, v, (7, 7), (3, 3), table)
    out = window_attention_2d(q.bfloat16(), k.bfloat16(), v.bfloat16(), 7, 3, table.bfloat16())
    assert _rel_err(out.float(), ref) <= 3e-2


def test_relative_position_index_is_swins():
    idx = relative_position_index((2, 2))
    # tokens (0,0) (0,1) (1,0) (1,1); offsets (dy+1)*3 + (dx+1)
    assert idx.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


def test_msw_msa_shifts_are_quarter_windows():
    assert [msw_msa_shift((50, 76), s) for s in range(4)] == [(0, 0), (12, 19), (24, 38), (36, 57)]


def test_shift_outside_the_window_is_refused():
    q, k, v = _qkv(8, 8)
    with pytest.raises(ValueError, match='shift'):
        window_attention_2d(q, k, v, 4, shift=4)


@pytest.mark.parametrize('size', [(13, 21), (7, 14), (3, 5), (9, 6)])
def test_pad_partition_and_merge_crop_equal_pad_then_partition_and_their_inverse(size):
    from plugins.ops.window import merge_crop_rows, pad_partition_rows
    h, w = size
    win = (7, 4)
    hv, wv = h + (-h) % 7, w + (-w) % 4
    torch.manual_seed(0)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    padded = torch.nn.functional.pad(x.permute(0, 2, 3, 1), (0, 0, 0, wv - w, 0, hv - h))
    ref = padded.reshape(2, hv // 7, 7, wv // 4, 4, 3).transpose(2, 3).reshape(2, -1, 3)
    assert torch.equal(pad_partition_rows(x, win), ref)
    rows = torch.randn(2, hv * wv, 3, dtype=torch.float64, requires_grad=True)
    merged = rows.view(2, hv // 7, wv // 4, 7, 4, 3).transpose(2, 3).reshape(2, hv, wv, 3)
    assert torch.equal(merge_crop_rows(rows, win, size), merged[:, :h, :w])
    assert torch.autograd.gradcheck(lambda t: pad_partition_rows(t, win), (x, ))
    assert torch.autograd.gradcheck(lambda t: merge_crop_rows(t, win, size), (rows, ))


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')  # shapes are constants here
def test_pad_partition_and_merge_crop_trace_to_the_same_numbers():
    from plugins.ops.window import merge_crop_rows, pad_partition_rows

    def both(x):
        return merge_crop_rows(pad_partition_rows(x, (7, 7)) * 2, (7, 7), (9, 12))
    x = torch.randn(1, 3, 9, 12)
    traced = torch.jit.trace(both, (x, ))
    assert 'PythonOp' not in str(traced.graph)
    assert torch.equal(traced(x), both(x))
