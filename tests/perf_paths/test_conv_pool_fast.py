"""Fast paths of LeNet's layers against plain definitions: ReLU's blocked maximum, the
2x2 max-pool tree and the "wide" col2im of a stride-1 convolution's input gradient."""
import numpy as np
import pytest
from op_helper import has_oracle, torch
from tolerance import assert_sums_close

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import cpu, maxpool
from shendu.ops import _conv_patches as CP
from shendu.ops import conv as CONV

rng = np.random.default_rng(5)


def channel_major(a):
    """The same (N, C, H, W) values stored as a C-contiguous (C, N, H, W) array."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def bits(a):
    return a.view(np.int32 if a.dtype == np.float32 else np.int64)


# ---------------------------------------------------------------------- ReLU
SPECIAL = [-0.0, 0.0, np.nan, -np.nan, -np.inf, np.inf, -1.5, 2.5, 1e-40, -1e-40]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided", "1d"])
def test_relu_matches_numpy_maximum_bit_for_bit(dtype, layout):
    n = cpu.RELU_BLOCK + 37  # crosses a block boundary
    vals = np.concatenate([np.array(SPECIAL * 3), rng.standard_normal(n)]).astype(dtype)
    if layout == "1d":
        x = vals
    else:
        x = vals[:3 * 7 * 11 * 13 * 8].reshape(7, 3, 11, 104)
        if layout == "channel_major":
            x = channel_major(x)
        elif layout == "strided":
            x = x[:, :, ::2, 1::3]  # not dense: takes the plain np.maximum
    out = F.relu(sd.from_numpy(x)).numpy()
    want = np.maximum(x, 0)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(bits(np.ascontiguousarray(out)),
                                  bits(np.ascontiguousarray(want)))
    if layout == "channel_major":
        assert out.transpose(1, 0, 2, 3).flags.c_contiguous  # stays channel-major


def test_relu_small_ints_and_grad():
    xi = np.array([[-3, 0, 4]], np.int64)
    np.testing.assert_array_equal(F.relu(sd.from_numpy(xi)).numpy(), [[0, 0, 4]])
    x = channel_major(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    t = sd.from_numpy(x).requires_grad_(True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    F.relu(t).backward(sd.from_numpy(g))
    np.testing.assert_array_equal(t.grad.numpy(), g * (x > 0))
    assert F.relu(sd.from_numpy(np.array(-2.0, np.float32))).numpy() == 0  # 0-d
    assert F.relu(sd.from_numpy(np.zeros((0, 3), np.float32))).numpy().shape == (0, 3)


# ---------------------------------------------------------------------- 2x2 max pool
def pool_reference(x, k=2):
    """Max of each k x k window and the gradient routed to its first maximum (row-major),
    or to its last NaN, as PyTorch does."""
    n, c, h, w = x.shape
    oh, ow = h // k, w // k
    out = np.empty((n, c, oh, ow), x.dtype)
    where = {}
    for idx in np.ndindex(n, c, oh, ow):
        a, b, i, j = idx
        win = x[a, b, i * k:(i + 1) * k, j * k:(j + 1) * k].reshape(-1)
        best = 0
        for t in range(1, win.size):
            if win[t] > win[best] or np.isnan(win[t]):
                best = t
        out[idx] = win[best]
        where[idx] = (a, b, i * k + best // k, j * k + best % k)
    return out, where


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cm", [False, True], ids=["nchw", "channel_major"])
def test_max_pool_2x2_tree_ties_first_maximum(dtype, batch, cm):
    # values from a small set: many windows hold two, three or four equal maxima
    x = rng.integers(-2, 3, (batch, 3, 6, 9)).astype(dtype)  # odd width: last column unused
    if dtype != np.int32:
        x[0, 0, 0, :2] = np.nan  # a window with two NaNs: the later one wins
        x[0, 1, 2, 3] = np.nan
    src = channel_major(x) if cm else x
    t = sd.from_numpy(src).requires_grad_(dtype != np.int32)
    out = F.max_pool2d(t, 2)
    want, where = pool_reference(x)
    np.testing.assert_array_equal(out.detach().numpy(), want)
    if dtype == np.int32:
        return
    g = rng.standard_normal(want.shape).astype(dtype)
    out.backward(sd.from_numpy(g))
    gx = t.grad.numpy()
    expect = np.zeros(x.shape, dtype)
    for idx, at in where.items():
        expect[at] = g[idx]
    np.testing.assert_array_equal(gx, expect)
    if has_oracle(torch):
        tt = torch.from_numpy(x.copy()).requires_grad_(True)
        torch.nn.functional.max_pool2d(tt, 2).backward(torch.from_numpy(g))
        np.testing.assert_array_equal(gx, tt.grad.numpy())


def test_max_pool_tree_agrees_with_the_general_loop():
    x = rng.integers(-3, 4, (4, 5, 8, 10)).astype(np.float32)
    views = [x[:, :, i::2, j::2] for i in range(2) for j in range(2)]
    out1, code1 = np.empty_like(views[0]), np.empty(views[0].shape, np.uint8)
    out2, code2 = np.empty_like(out1), np.empty_like(code1)
    maxpool._max4(np, views, out1, code1)
    maxpool._max_any(np, views, out2, code2)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(code1, code2)


# ---------------------------------------------------------------------- wide col2im
def input_grad_reference(g, w, x_shape, pads, dilation, groups):
    """dX of a stride-1 conv by its definition, in float64."""
    n, c, h, wd = x_shape
    o, cg, kh, kw = w.shape
    (pt, pb), (pl, pr) = pads
    og = o // groups
    oh, ow = g.shape[2:]
    gx = np.zeros((n, c, h + pt + pb, wd + pl + pr))
    for oc in range(o):
        grp = oc // og
        for i in range(kh):
            for j in range(kw):
                for ci in range(cg):
                    gx[:, grp * cg + ci, i * dilation[0]:i * dilation[0] + oh,
                       j * dilation[1]:j * dilation[1] + ow] += g[:, oc] * w[oc, ci, i, j]
    return gx[:, :, pt:pt + h, pl:pl + wd]


GEOMS = [  # (x shape, w shape, pads, dilation, groups)
    ((3, 6, 14, 14), (16, 6, 5, 5), ((0, 0), (0, 0)), (1, 1), 1),  # LeNet conv2, odd batch
    ((1, 6, 14, 14), (16, 6, 5, 5), ((0, 0), (0, 0)), (1, 1), 1),  # batch 1
    ((2, 4, 7, 6), (6, 2, 3, 2), ((1, 2), (0, 1)), (1, 1), 2),     # asymmetric pads, groups
    ((2, 3, 9, 8), (4, 3, 3, 3), ((2, 2), (2, 2)), (2, 2), 1),     # dilation
    ((2, 3, 6, 6), (2, 3, 3, 3), ((3, 3), (1, 1)), (1, 1), 1),     # pads beyond the kernel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMS, ids=str)
@pytest.mark.parametrize("chunk", [None, 1], ids=["one_chunk", "chunk_per_image"])
def test_wide_col2im_matches_the_definition(geom, dtype, chunk, monkeypatch):
    x_shape, w_shape, pads, dilation, groups = geom
    w = rng.standard_normal(w_shape).astype(dtype)
    oh, ow = (CP.out_size(x_shape[2 + a], w_shape[2 + a], 1, *pads[a], dilation[a])
              for a in range(2))
    g = rng.standard_normal((x_shape[0], w_shape[0], oh, ow)).astype(dtype)
    if chunk:  # one image per chunk: the runs must stop at each chunk's last plane
        monkeypatch.setattr(CP, "PATCH_CHUNK_BYTES", 1)
    CP.clear_buffer_pool()
    calls = []
    wide = CONV.col2im_wide
    monkeypatch.setattr(CONV, "col2im_wide", lambda *a: calls.append(1) or wide(*a))
    scale = input_grad_reference(np.abs(g).astype(np.float64), np.abs(w).astype(np.float64),
                                 x_shape, pads, dilation, groups)
    for gt in (np.ascontiguousarray(g.transpose(1, 0, 2, 3)),) * 2:  # reused buffers too
        gx = CONV._input_grad_col2im(gt, w, x_shape, (1, 1), pads, dilation, groups)
        gx = gx.transpose(1, 0, 2, 3)
        assert gx.dtype == dtype and gx.shape == x_shape
        # the same products summed in another order: each entry adds at most
        # (O / groups) * kh * kw of them
        terms = w_shape[0] // groups * w_shape[2] * w_shape[3]
        assert_sums_close(gx, input_grad_reference(g, w, x_shape, pads, dilation, groups),
                          terms, scale)
    assert calls  # the wide path ran


def test_col2im_keeps_the_row_path_for_strides_and_non_finite_weights(monkeypatch):
    monkeypatch.setattr(CONV, "col2im_wide", lambda *a: pytest.fail("wide path taken"))
    w = rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((4, 2, 3, 3))  # channel-major (O, N, OH, OW)
    x_shape = (2, 3, 7, 7)
    gx = CONV._input_grad_col2im(g, w, x_shape, (2, 2), ((0, 0), (0, 0)), (1, 1), 1)
    assert gx.shape == (3, 2, 7, 7)
    w[0, 0, 0, 0] = np.inf  # inf * the zero padding would give NaN: the row path is kept
    g = rng.standard_normal((4, 2, 5, 5))
    gx = CONV._input_grad_col2im(g, w, x_shape, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    gx = gx.transpose(1, 0, 2, 3)
    want = input_grad_reference(g.transpose(1, 0, 2, 3), w, x_shape, ((0, 0), (0, 0)),
                                (1, 1), 1)
    np.testing.assert_allclose(gx[:, 1:], want[:, 1:], rtol=1e-12, atol=1e-12)
    assert np.isinf(gx[:, 0]).any() and not np.isnan(gx[:, 1:]).any()


def test_lenet_conv2_gradients_match_pytorch():
    if torch is None:
        pytest.skip("PyTorch is not installed")
    x = channel_major(rng.standard_normal((5, 6, 14, 14)).astype(np.float32))
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32) * 0.2
    xt, wt = sd.from_numpy(x).requires_grad_(True), sd.from_numpy(w).requires_grad_(True)
    out = F.relu(F.conv2d(xt, wt))
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(sd.from_numpy(g))
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    tw = torch.from_numpy(w).requires_grad_(True)
    tout = torch.relu(torch.nn.functional.conv2d(tx, tw))
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-3)
