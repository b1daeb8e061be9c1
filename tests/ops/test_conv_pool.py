"""Convolution and pooling against a direct NumPy loop, finite differences and PyTorch."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(0)
TF = torch and torch.nn.functional


def r(*shape):
    return rng.standard_normal(shape)


def conv2d_loop(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct definition: out[n,o,i,j] = sum_{c,p,q} x_pad[n,c,i*s+p*d,j*s+q*d] w[o,c,p,q]."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * stride, i * stride + dilation * (kh - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (kw - 1) + 1, dilation)
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                out[:, oc, i, j] = (patch * w[oc]).sum((1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d by its definition for per-axis stride/padding/dilation and PyTorch's 'same'
    (extra padding on the bottom/right) and 'valid'; (N, C, L) inputs as height 1."""
    if x.ndim == 3:
        return conv_ref(x[:, :, None], w[:, :, None], b, (1, stride), (0, padding),
                        (1, dilation), groups)[:, :, 0]
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    kh, kw = w.shape[2:]
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = _pair(padding)
        pads = ((ph, ph), (pw, pw))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    n, c, h, wd = xp.shape
    o, cg = w.shape[:2]
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for p in range(kh):
            for q in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, p * dh:p * dh + sh * (oh - 1) + 1:sh,
                           q * dw:q * dw + sw * (ow - 1) + 1:sw]
                out[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, p, q])
    return out if b is None else out + b[None, :, None, None]


def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1):
    """conv_transpose2d by its definition: each input pixel adds its weight-scaled kernel
    to the output at stride spacing; then the padding is cropped."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    (oph, opw), (dh, dw) = _pair(output_padding), _pair(dilation)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    full = np.zeros((n, og * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph,
                     (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    for ci in range(c):
        g = ci // cg
        for p in range(kh):
            for q in range(kw):
                full[:, g * og:(g + 1) * og, p * dh:p * dh + sh * (h - 1) + 1:sh,
                     q * dw:q * dw + sw * (wd - 1) + 1:sw] += \
                    x[:, ci, None] * w[ci, :, p, q][None, :, None, None]
    out = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return out if b is None else out + b[None, :, None, None]


def _pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # a last window starting in the padding
        out -= 1
    return out


def pool_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             mode="max", count_include_pad=True, divisor_override=None):
    """max/avg pooling by PyTorch's window definition (windows clipped to the padded
    input; the average divides by the clipped window, or by its in-input part)."""
    if x.ndim == 3:
        return pool_ref(x[:, :, None], (1, kernel_size), (1, stride or kernel_size),
                        (0, padding), 1, ceil_mode, mode, count_include_pad)[:, :, 0]
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(stride if stride is not None else kernel_size)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    oh, ow = _pool_out(h, kh, sh, ph, dh, ceil_mode), _pool_out(wd, kw, sw, pw, dw, ceil_mode)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [i * sh - ph + a * dh for a in range(kh)]
            cols = [j * sw - pw + b * dw for b in range(kw)]
            ri = [t for t in rows if 0 <= t < h]
            cj = [t for t in cols if 0 <= t < wd]
            win = x[:, :, ri][:, :, :, cj]
            if mode == "max":
                out[:, :, i, j] = win.max((2, 3))
                continue
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = (min(i * sh - ph + kh, h + ph) - (i * sh - ph)) * \
                      (min(j * sw - pw + kw, wd + pw) - (j * sw - pw))
            else:
                div = len(ri) * len(cj)
            out[:, :, i, j] = win.sum((2, 3)) / div
    return out


def adaptive_ref(x, size, mode):
    """Adaptive pooling: output cell i covers input rows floor(i H / out) to
    ceil((i + 1) H / out)."""
    if x.ndim == 3:
        return adaptive_ref(x[:, :, None], (1, size), mode)[:, :, 0]
    h, wd = x.shape[2:]
    oh, ow = _pair(size)
    oh, ow = oh or h, ow or wd
    out = np.empty(x.shape[:2] + (oh, ow))
    red = np.max if mode == "max" else np.mean
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * h // oh:-(-(i + 1) * h // oh), j * wd // ow:-(-(j + 1) * wd // ow)]
            out[:, :, i, j] = red(win, axis=(2, 3))
    return out


CONV = [dict(), dict(stride=2), dict(padding=1), dict(dilation=2, padding=2),
        dict(groups=2), dict(stride=2, padding=1, groups=2)]


@pytest.mark.parametrize("kw", CONV, ids=[str(k) for k in CONV])
def test_conv2d(kw):
    x, w, b = r(2, 4, 7, 6), r(4, 4 // kw.get("groups", 1), 3, 3), r(4)
    check_op(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b],
             lambda x, w, b: conv2d_loop(x, w, b, **kw),
             TF and (lambda x, w, b: TF.conv2d(x, w, b, **kw)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's own notice
def test_conv2d_no_bias_rect_kernel_and_same_valid():
    check_op(lambda x, w: F.conv2d(x, w, padding=(2, 0), stride=(1, 2)), [r(1, 2, 5, 7),
                                                                         r(3, 2, 2, 3)],
             lambda x, w: conv_ref(x, w, padding=(2, 0), stride=(1, 2)),
             TF and (lambda x, w: TF.conv2d(x, w, padding=(2, 0), stride=(1, 2))))
    for pad in ("same", "valid"):
        check_op(lambda x, w, pad=pad: F.conv2d(x, w, padding=pad), [r(1, 2, 5, 5), r(3, 2, 4, 3)],
                 lambda x, w, pad=pad: conv_ref(x, w, padding=pad),
                 TF and (lambda x, w, pad=pad: TF.conv2d(x, w, padding=pad)))
    out = F.conv2d(sd.ones(1, 1, 6, 6), sd.ones(2, 1, 5, 5), padding="same")
    assert out.shape == (1, 2, 6, 6)


def test_conv1d_and_1x1():
    check_op(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), [r(2, 3, 9), r(4, 3, 3),
                                                                      r(4)],
             lambda x, w, b: conv_ref(x, w, b, stride=2, padding=1),
             TF and (lambda x, w, b: TF.conv1d(x, w, b, stride=2, padding=1)))
    x, w = r(2, 3, 4, 4), r(5, 3, 1, 1)
    check_op(F.conv2d, [x, w], lambda x, w: np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]),
             TF and TF.conv2d)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1),
                                dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, dilation=2), dict(groups=2, stride=2),
                                # stride = kernel size: the taps tile the output
                                dict(stride=3), dict(stride=3, groups=2)])
def test_conv_transpose2d(kw):
    g = kw.get("groups", 1)
    x, w, b = r(2, 4, 3, 4), r(4, 6 // g, 3, 3), r(6)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), [x, w, b],
             lambda x, w, b: conv_transpose_ref(x, w, b, **kw),
             TF and (lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw)))


def test_conv_transpose_is_the_adjoint_of_conv():
    x, y, w = r(2, 3, 6, 6), r(2, 4, 3, 3), r(4, 3, 3, 3)
    lhs = (F.conv2d(sd.tensor(x), sd.tensor(w), stride=2, padding=1).numpy() * y).sum()
    rhs = (F.conv_transpose2d(sd.tensor(y), sd.tensor(w), stride=2, padding=1,
                              output_padding=1).numpy() * x).sum()
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_conv_errors():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects 1 "
                                         r"\(weight shape \(6, 1, 5, 5\)"):
        F.conv2d(sd.ones(1, 3, 28, 28), sd.ones(6, 1, 5, 5))
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(sd.ones(1, 1, 2, 2), sd.ones(1, 1, 3, 3))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(sd.ones(1, 1, 4, 4, dtype=sd.float64), sd.ones(1, 1, 3, 3))


def test_conv_unbatched_input():
    x, w = sd.randn(3, 5, 5), sd.randn(2, 3, 3, 3)
    np.testing.assert_allclose(F.conv2d(x, w).numpy(), F.conv2d(x.unsqueeze(0), w)[0].numpy())


def distinct(*shape):
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape).astype(np.float64) / n


POOL = [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=1,
                                                                 padding=1),
        dict(kernel_size=2, stride=2, ceil_mode=True), dict(kernel_size=(2, 3), stride=(1, 2)),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)]


@pytest.mark.parametrize("kw", POOL, ids=[str(k) for k in POOL])
def test_max_pool2d(kw):
    check_op(lambda x: F.max_pool2d(x, **kw), [distinct(2, 3, 7, 7)],
             lambda x: pool_ref(x, **kw),
             TF and (lambda x: TF.max_pool2d(x, **kw)))


def test_max_pool_dilation_and_indices():
    check_op(lambda x: F.max_pool2d(x, 2, dilation=2), [distinct(1, 2, 6, 6)],
             lambda x: pool_ref(x, 2, dilation=2),
             TF and (lambda x: TF.max_pool2d(x, 2, dilation=2)))
    x = distinct(2, 3, 6, 7)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):
        _, idx = F.max_pool2d(sd.tensor(x), return_indices=True, **kw)
        if has_oracle(torch):
            _, tidx = TF.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
            assert np.array_equal(idx.numpy(), tidx.numpy())


def test_max_pool_2x2_matches_reshape_definition():
    x = distinct(2, 3, 8, 6)
    ref = x.reshape(2, 3, 4, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(F.max_pool2d(sd.tensor(x), 2).numpy(), ref)


@pytest.mark.parametrize("kw", POOL + [dict(kernel_size=3, padding=1, count_include_pad=False),
                                       dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                            count_include_pad=False),
                                       dict(kernel_size=2, divisor_override=3)])
def test_avg_pool2d(kw):
    check_op(lambda x: F.avg_pool2d(x, **kw), [r(2, 3, 7, 7)],
             lambda x: pool_ref(x, mode="avg", **kw),
             TF and (lambda x: TF.avg_pool2d(x, **kw)))


@pytest.mark.parametrize("size", [1, (2, 3), (3, 3), 5, (None, 2)])
def test_adaptive_pools(size):
    check_op(lambda x: F.adaptive_avg_pool2d(x, size), [r(2, 3, 6, 7)],
             lambda x: adaptive_ref(x, size, "avg"),
             TF and (lambda x: TF.adaptive_avg_pool2d(x, size)))
    check_op(lambda x: F.adaptive_max_pool2d(x, size), [distinct(2, 3, 6, 7)],
             lambda x: adaptive_ref(x, size, "max"),
             TF and (lambda x: TF.adaptive_max_pool2d(x, size)))


def test_pool_1d():
    check_op(lambda x: F.max_pool1d(x, 2), [distinct(2, 3, 8)], lambda x: pool_ref(x, 2),
             TF and (lambda x: TF.max_pool1d(x, 2)))
    check_op(lambda x: F.avg_pool1d(x, 3, 2, 1), [r(2, 3, 8)],
             lambda x: pool_ref(x, 3, 2, 1, mode="avg"),
             TF and (lambda x: TF.avg_pool1d(x, 3, 2, 1)))
    check_op(lambda x: F.adaptive_avg_pool1d(x, 3), [r(2, 3, 7)],
             lambda x: adaptive_ref(x, 3, "avg"),
             TF and (lambda x: TF.adaptive_avg_pool1d(x, 3)))


# ---------------------------------------------------------------- fast paths of ops/conv.py
import shendu.ops._conv_patches as CP  # noqa: E402
import shendu.ops.conv as CONV  # noqa: E402


def channel_major(a):
    """The same (N, C, H, W) values stored as a C-contiguous (C, N, H, W) array."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# Stride-1 layers for which dX may be computed either way (correlation or col2im).
BOTH_WAYS = [dict(padding=1), dict(padding=2, dilation=2), dict(padding=(1, 0)),
             dict(padding=1, groups=2), dict(padding="same")]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("method", ["correlate", "col2im"])
@pytest.mark.parametrize("kw", BOTH_WAYS, ids=[str(k) for k in BOTH_WAYS])
def test_conv2d_input_grad_both_ways(kw, method, monkeypatch):
    monkeypatch.setattr(CONV, "backward_method", lambda *a: method)
    x, w, b = r(3, 4, 6, 5), r(6, 4 // kw.get("groups", 1), 3, 2), r(6)
    check_op(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b],
             lambda x, w, b: conv_ref(x, w, b, **kw),
             TF and (lambda x, w, b: TF.conv2d(x, w, b, **kw)))


def test_backward_method_choice():
    # 3x3 'same' with as many outputs as inputs: the correlation's patches are no bigger.
    assert CONV.backward_method((2, 8, 6, 6), (8, 8, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1),
                                (6, 6)) == "correlate"
    # 'valid' 5x5 (LeNet conv2): the padded gradient would need 4x bigger patches.
    assert CONV.backward_method((2, 6, 14, 14), (16, 6, 5, 5), (1, 1), ((0, 0), (0, 0)),
                                (1, 1), (10, 10)) == "col2im"
    assert CONV.backward_method((2, 8, 6, 6), (8, 8, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1),
                                (3, 3)) == "col2im"
    # padding wider than the kernel's reach cannot be undone by padding the gradient
    assert CONV.backward_method((2, 8, 6, 6), (8, 8, 3, 3), (1, 1), ((3, 3), (1, 1)), (1, 1),
                                (10, 6)) == "col2im"


@pytest.mark.parametrize("chunk_images", [1, 2, 5])
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1, groups=2),
                                dict(dilation=2)], ids=str)
def test_conv2d_chunked_over_the_batch(chunk_images, kw, monkeypatch):
    """Chunks of 1, 2 (uneven last chunk) and all 5 images give the same values and grads."""
    x, w, b = r(5, 4, 7, 6), r(4, 4 // kw.get("groups", 1), 3, 3), r(4)
    oh = CP.out_size(7, 3, kw.get("stride", 1), kw.get("padding", 0), kw.get("padding", 0),
                     kw.get("dilation", 1))
    ow = CP.out_size(6, 3, kw.get("stride", 1), kw.get("padding", 0), kw.get("padding", 0),
                     kw.get("dilation", 1))
    # one image's patch matrix is the biggest per-image buffer: size the chunk in images
    per_image = 8 * max(4 * 9 * oh * ow, 4 * 9 * 7 * 6)
    monkeypatch.setattr(CP, "PATCH_CHUNK_BYTES", per_image * chunk_images)
    CP.clear_buffer_pool()
    check_op(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b],
             lambda x, w, b: conv2d_loop(x, w, b, **kw),
             TF and (lambda x, w, b: TF.conv2d(x, w, b, **kw)))


def _chain(x, w1, b1, w2, g, pool):
    """conv -> relu -> pool -> conv and the gradients of x, w1, w2 for output gradient g."""
    p1, p2 = sd.tensor(w1, requires_grad=True), sd.tensor(w2, requires_grad=True)
    h = pool(F.relu(F.conv2d(x, p1, sd.tensor(b1), padding=1)))
    out = F.conv2d(h, p2, padding=1)
    out.backward(g)
    return out.detach().numpy(), x.grad.numpy(), p1.grad.numpy(), p2.grad.numpy()


def _chain_bounds(x0, w1, b1, w2, g0):
    """How far float32 may land from the exact chain: the same chain on absolute values
    in float64, with the max-pool replaced by a window sum (at least the chosen element,
    and its backward reaches every element a max could route to), bounds each output's
    and gradient's sum of absolute terms; about 18 + 4 + 36 products deep forward and
    up to 3 * 8 * 8 summed positions in a weight gradient."""
    a = [np.abs(v).astype(np.float64) for v in (x0, w1, b1, w2, g0)]
    x = sd.tensor(a[0], requires_grad=True)
    scales = _chain(x, *a[1:4], sd.tensor(a[4]), lambda t: 4 * F.avg_pool2d(t, 2))
    eps = float(np.finfo(np.float32).eps)
    return [(18 + 4 + 36 + 3 * 8 * 8 + 2) * eps * s + 1e-30 for s in scales]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_chain_channel_major_layout(dtype):
    """conv -> relu -> pool -> conv passes channel-major arrays; values and grads match
    PyTorch (or the loop definition), whichever layout the input and the gradient have.
    float32 is held to the float64 chain within the bound its sums allow."""
    x0, w1, w2 = r(3, 2, 8, 8).astype(dtype), r(4, 2, 3, 3).astype(dtype), \
        r(5, 4, 3, 3).astype(dtype)
    b1, g0 = r(4).astype(dtype), r(3, 5, 4, 4).astype(dtype)
    pool = lambda t: F.max_pool2d(t, 2)  # noqa: E731
    exact = _chain(sd.tensor(x0.astype(np.float64), requires_grad=True),
                   *(v.astype(np.float64) for v in (w1, b1, w2)),
                   sd.tensor(g0.astype(np.float64)), pool)
    bounds = _chain_bounds(x0, w1, b1, w2, g0) if dtype == np.float32 else [1e-9] * 4
    ref = conv2d_loop(np.maximum(conv2d_loop(x0.astype(np.float64), w1, b1, padding=1), 0)
                      .reshape(3, 4, 4, 2, 4, 2).max(axis=(3, 5)), w2, padding=1)
    np.testing.assert_allclose(exact[0], ref, rtol=1e-12, atol=1e-12)
    if has_oracle(torch):
        tx = torch.from_numpy(x0.astype(np.float64)).requires_grad_(True)
        t1 = torch.from_numpy(w1.astype(np.float64)).requires_grad_(True)
        t2 = torch.from_numpy(w2.astype(np.float64)).requires_grad_(True)
        th = TF.max_pool2d(TF.relu(TF.conv2d(tx, t1, torch.from_numpy(b1.astype(np.float64)),
                                             padding=1)), 2)
        TF.conv2d(th, t2, padding=1).backward(torch.from_numpy(g0.astype(np.float64)))
        for mine, theirs in zip(exact[1:], (tx, t1, t2)):
            np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)
    for x_layout in (np.ascontiguousarray, channel_major):
        for g_layout in (np.ascontiguousarray, channel_major):
            x = sd.from_numpy(x_layout(x0)).requires_grad_(True)
            got = _chain(x, w1, b1, w2, sd.from_numpy(g_layout(g0)), pool)
            for k, (a, e, bound) in enumerate(zip(got, exact, bounds)):
                assert a.dtype == dtype
                err = np.abs(a - e)
                assert (err <= bound).all(), (k, err.max(), x_layout, g_layout)


def test_conv_output_layout_and_grad_requirements():
    x, w, b = r(2, 3, 6, 6), r(4, 3, 3, 3), r(4)
    out = F.conv2d(sd.tensor(x), sd.tensor(w), sd.tensor(b), padding=1)
    # the result is a transposed view of the GEMM's (O, N, OH, OW) output, not a copy
    assert out.numpy().transpose(1, 0, 2, 3).flags.c_contiguous
    np.testing.assert_allclose(out.numpy(), conv2d_loop(x, w, b, padding=1), atol=1e-12)
    # weight-only gradients (the first layer of a net): dX is skipped, dW still right
    xt, wt = sd.tensor(x), sd.tensor(w, requires_grad=True)
    F.conv2d(xt, wt, padding=1).sum().backward()
    assert xt.grad is None
    ones = np.ones((2, 4, 6, 6))
    if has_oracle(torch):
        tw = torch.from_numpy(w).requires_grad_(True)
        TF.conv2d(torch.from_numpy(x), tw, padding=1).backward(torch.from_numpy(ones))
        np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
    # input-only gradients
    xt, wt = sd.tensor(x, requires_grad=True), sd.tensor(w)
    F.conv2d(xt, wt, padding=1).sum().backward()
    assert wt.grad is None and xt.grad.shape == x.shape
    if has_oracle(torch):
        tx = torch.from_numpy(x).requires_grad_(True)
        TF.conv2d(tx, torch.from_numpy(w), padding=1).backward(torch.from_numpy(ones))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_conv_scratch_buffers_are_reused_safely():
    """Layers of different shapes share the scratch pool: padded borders stay zero."""
    CP.clear_buffer_pool()
    layers = [(r(3, 2, 9, 9), r(3, 2, 3, 3), 1), (r(3, 2, 9, 9), r(3, 2, 5, 5), 2),
              (r(2, 3, 5, 5), r(2, 3, 3, 3), 0)]
    for _ in range(2):
        for x, w, p in layers:
            got = F.conv2d(sd.tensor(x), sd.tensor(w), padding=p).numpy()
            np.testing.assert_allclose(got, conv2d_loop(x, w, padding=p), atol=1e-12)
    from shendu.backend import scratch

    assert scratch._FLAT and len(next(iter(scratch._FLAT.values()))) <= scratch._FLAT_KEEP
    CP.clear_buffer_pool()
    assert not scratch._FLAT and not scratch._PADDED


# ---------------------------------------------------------------- tiled max-pool fast path
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=(2, 3)),
                                dict(kernel_size=2, stride=2)], ids=str)
def test_max_pool2d_tiled_odd_sizes(kw):
    """Non-overlapping windows that leave the last rows/cols uncovered (gradient 0 there)."""
    check_op(lambda x: F.max_pool2d(x, **kw), [distinct(2, 3, 7, 8)],
             lambda x: pool_ref(x, **kw),
             TF and (lambda x: TF.max_pool2d(x, **kw)))


def test_max_pool2d_ties_and_nan_route_like_pytorch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0        # window (0,0): two equal maxima
    x[0, 0, 2:, 2:] = [[np.nan, 2], [np.nan, 5]]  # window (1,1): two NaNs
    t = sd.tensor(x, requires_grad=True)
    out = F.max_pool2d(t, 2)
    out.backward(sd.ones(1, 1, 2, 2, dtype=sd.float64))
    assert np.isnan(out.detach().numpy()[0, 0, 1, 1])
    expected = np.zeros((4, 4))
    expected[0, 1] = 1  # the first maximum in row-major order
    expected[0, 2] = expected[2, 0] = 1  # all-zero windows: the first element
    expected[3, 2] = 1  # NaN wins, and the later NaN is the one recorded
    np.testing.assert_array_equal(t.grad.numpy()[0, 0], expected)
    if has_oracle(torch):
        tt = torch.from_numpy(x).requires_grad_(True)
        TF.max_pool2d(tt, 2).backward(torch.ones(1, 1, 2, 2, dtype=torch.float64))
        np.testing.assert_array_equal(t.grad.numpy(), tt.grad.numpy())


def test_max_pool2d_tiled_keeps_layout_and_dtype():
    x = distinct(2, 3, 6, 6)
    cm = channel_major(x)
    out = F.max_pool2d(sd.from_numpy(cm), 2).numpy()
    assert out.transpose(1, 0, 2, 3).flags.c_contiguous  # stays channel-major
    np.testing.assert_array_equal(out, x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    xi = (x * 1000).astype(np.int32)
    np.testing.assert_array_equal(F.max_pool2d(sd.from_numpy(xi), 2).numpy(),
                                  xi.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    t = sd.from_numpy(cm.astype(np.float32)).requires_grad_(True)
    F.max_pool2d(t, 2).sum().backward()
    g = t.grad.numpy()
    assert g.dtype == np.float32 and g.sum() == 2 * 3 * 9
    np.testing.assert_array_equal(g, (x == np.repeat(np.repeat(
        x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)), 2, 2), 2, 3)).astype(np.float32))


def test_conv_kept_patches_and_retain_graph():
    """Weight-only gradients keep the forward's patch matrix for backward; a second
    backward (retain_graph) re-patches the input instead of reading a recycled buffer."""
    x, w, g = r(2, 3, 6, 6), r(4, 3, 3, 3), r(2, 4, 6, 6)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    ref = np.einsum("noyx,ncyxij->ocij", g, windows)
    wt = sd.tensor(w, requires_grad=True)
    out = F.conv2d(sd.tensor(x), wt, padding=1)
    out.backward(sd.tensor(g), retain_graph=True)
    np.testing.assert_allclose(wt.grad.numpy(), ref, rtol=1e-10)
    F.conv2d(sd.tensor(r(2, 3, 6, 6)), sd.tensor(w), padding=1)  # reuses the scratch
    out.backward(sd.tensor(g))
    np.testing.assert_allclose(wt.grad.numpy(), 2 * ref, rtol=1e-10)


def test_conv_in_several_threads():
    """The scratch pool is shared: convolutions running at once must not share buffers."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [(r(4, 3, 10, 10), r(5, 3, 3, 3), p) for p in (0, 1, 2)] * 4

    def run(case):
        x, w, p = case
        for _ in range(5):
            got = F.conv2d(sd.tensor(x), sd.tensor(w), padding=p).numpy()
        return got, conv2d_loop(x, w, padding=p)

    with ThreadPoolExecutor(4) as pool:
        for got, ref in pool.map(run, cases):
            np.testing.assert_allclose(got, ref, atol=1e-12)
