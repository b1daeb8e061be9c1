"""Convolution and pooling against a direct NumPy loop, finite differences and PyTorch."""
import numpy as np
import pytest
from op_helper import check_op, torch

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
             None, TF and (lambda x, w: TF.conv2d(x, w, padding=(2, 0), stride=(1, 2))))
    for pad in ("same", "valid"):
        check_op(lambda x, w, pad=pad: F.conv2d(x, w, padding=pad), [r(1, 2, 5, 5), r(3, 2, 4, 3)],
                 None, TF and (lambda x, w, pad=pad: TF.conv2d(x, w, padding=pad)))
    out = F.conv2d(sd.ones(1, 1, 6, 6), sd.ones(2, 1, 5, 5), padding="same")
    assert out.shape == (1, 2, 6, 6)


def test_conv1d_and_1x1():
    check_op(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), [r(2, 3, 9), r(4, 3, 3),
                                                                      r(4)],
             None, TF and (lambda x, w, b: TF.conv1d(x, w, b, stride=2, padding=1)))
    x, w = r(2, 3, 4, 4), r(5, 3, 1, 1)
    check_op(F.conv2d, [x, w], lambda x, w: np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]),
             TF and TF.conv2d)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1),
                                dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, dilation=2), dict(groups=2, stride=2)])
def test_conv_transpose2d(kw):
    g = kw.get("groups", 1)
    x, w, b = r(2, 4, 3, 4), r(4, 6 // g, 3, 3), r(6)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), [x, w, b], None,
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
    check_op(lambda x: F.max_pool2d(x, **kw), [distinct(2, 3, 7, 7)], None,
             TF and (lambda x: TF.max_pool2d(x, **kw)))


def test_max_pool_dilation_and_indices():
    check_op(lambda x: F.max_pool2d(x, 2, dilation=2), [distinct(1, 2, 6, 6)], None,
             TF and (lambda x: TF.max_pool2d(x, 2, dilation=2)))
    x = distinct(2, 3, 6, 7)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):
        _, idx = F.max_pool2d(sd.tensor(x), return_indices=True, **kw)
        if torch is not None:
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
    check_op(lambda x: F.avg_pool2d(x, **kw), [r(2, 3, 7, 7)], None,
             TF and (lambda x: TF.avg_pool2d(x, **kw)))


@pytest.mark.parametrize("size", [1, (2, 3), (3, 3), 5, (None, 2)])
def test_adaptive_pools(size):
    check_op(lambda x: F.adaptive_avg_pool2d(x, size), [r(2, 3, 6, 7)], None,
             TF and (lambda x: TF.adaptive_avg_pool2d(x, size)))
    check_op(lambda x: F.adaptive_max_pool2d(x, size), [distinct(2, 3, 6, 7)], None,
             TF and (lambda x: TF.adaptive_max_pool2d(x, size)))


def test_pool_1d():
    check_op(lambda x: F.max_pool1d(x, 2), [distinct(2, 3, 8)], None,
             TF and (lambda x: TF.max_pool1d(x, 2)))
    check_op(lambda x: F.avg_pool1d(x, 3, 2, 1), [r(2, 3, 8)], None,
             TF and (lambda x: TF.avg_pool1d(x, 3, 2, 1)))
    check_op(lambda x: F.adaptive_avg_pool1d(x, 3), [r(2, 3, 7)], None,
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
    loop = isinstance(kw["padding"], int)  # the loop definition takes one int padding
    check_op(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b],
             (lambda x, w, b: conv2d_loop(x, w, b, **kw)) if loop else None,
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_chain_channel_major_layout(dtype):
    """conv -> relu -> pool -> conv passes channel-major arrays; values and grads match
    PyTorch (or the loop definition), whichever layout the input and the gradient have."""
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    x0, w1, w2 = r(3, 2, 8, 8).astype(dtype), r(4, 2, 3, 3).astype(dtype), \
        r(5, 4, 3, 3).astype(dtype)
    b1, g0 = r(4).astype(dtype), r(3, 5, 4, 4).astype(dtype)
    for x_layout in (np.ascontiguousarray, channel_major):
        for g_layout in (np.ascontiguousarray, channel_major):
            x = sd.from_numpy(x_layout(x0)).requires_grad_(True)
            p1 = sd.tensor(w1, requires_grad=True)
            p2 = sd.tensor(w2, requires_grad=True)
            c1 = F.conv2d(x, p1, sd.tensor(b1), padding=1)
            h = F.max_pool2d(F.relu(c1), 2)
            out = F.conv2d(h, p2, padding=1)
            ref = conv2d_loop(np.maximum(conv2d_loop(x0, w1, b1, padding=1), 0)
                              .reshape(3, 4, 4, 2, 4, 2).max(axis=(3, 5)), w2, padding=1)
            np.testing.assert_allclose(out.detach().numpy(), ref, **tol)
            out.backward(sd.from_numpy(g_layout(g0)))
            if torch is not None:
                tx = torch.from_numpy(x0).requires_grad_(True)
                t1 = torch.from_numpy(w1).requires_grad_(True)
                t2 = torch.from_numpy(w2).requires_grad_(True)
                th = TF.max_pool2d(TF.relu(TF.conv2d(tx, t1, torch.from_numpy(b1), padding=1)), 2)
                TF.conv2d(th, t2, padding=1).backward(torch.from_numpy(g0))
                for mine, theirs in ((x, tx), (p1, t1), (p2, t2)):
                    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), **tol)


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
    if torch is not None:
        tw = torch.from_numpy(w).requires_grad_(True)
        TF.conv2d(torch.from_numpy(x), tw, padding=1).backward(torch.from_numpy(ones))
        np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
    # input-only gradients
    xt, wt = sd.tensor(x, requires_grad=True), sd.tensor(w)
    F.conv2d(xt, wt, padding=1).sum().backward()
    assert wt.grad is None and xt.grad.shape == x.shape
    if torch is not None:
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
    check_op(lambda x: F.max_pool2d(x, **kw), [distinct(2, 3, 7, 8)], None,
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
    if torch is not None:
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
