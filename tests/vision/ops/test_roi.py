"""RoI Align and RoI pooling against loops written from torchvision's CPU kernels'
definitions (one bilinear sample at a time, one bin at a time), hand-computed cases for the
border, rounding and size rules, and gradients against finite differences; RoI Align on
its compiled loops and on the NumPy reference."""
import math

import numpy as np
import pytest
from op_helper import check_op

import shendu as sd
from shendu.backend import jit, runtime
from shendu.vision import ops

rng = np.random.default_rng(1414)


@pytest.fixture(params=["numba", "numpy"] if jit.available() else ["numpy"])
def path(request):
    """Run the test on the compiled loops, then on the NumPy reference, and check that
    each RoI Align call took that path."""
    with jit.use(request.param == "numba"), runtime.trace_paths() as log:
        yield request.param
    assert {p for op, p in log if op.startswith("roi_align")} == {request.param}


# -------------------------------------------------------------- references
def ref_bilinear(f, y, x):
    h, w = f.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0  # more than one cell outside the map
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * f[y0, x0] + (1 - ly) * lx * f[y0, x1]
            + ly * (1 - lx) * f[y1, x0] + ly * lx * f[y1, x1])


def ref_roi_align(x, rois, out, scale=1.0, sampling_ratio=-1, aligned=False):
    oh, ow = (out, out) if isinstance(out, int) else out
    res = np.zeros((len(rois), x.shape[1], oh, ow))
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / oh)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / ow)
        count = max(gh * gw, 1)
        for c in range(x.shape[1]):
            for ph in range(oh):
                for pw in range(ow):
                    total = 0.0
                    for iy in range(gh):
                        yy = sy + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            xx = sx + pw * bw + (ix + 0.5) * bw / gw
                            total += ref_bilinear(x[int(b), c], yy, xx)
                    res[k, c, ph, pw] = total / count
    return res


def round_half_away(v):
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def ref_roi_pool(x, rois, out, scale=1.0):
    oh, ow = (out, out) if isinstance(out, int) else out
    _, c, h, w = x.shape
    res = np.zeros((len(rois), c, oh, ow))
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        xs, ys = round_half_away(x1 * scale), round_half_away(y1 * scale)
        xe, ye = round_half_away(x2 * scale), round_half_away(y2 * scale)
        bh, bw = max(ye - ys + 1, 1) / oh, max(xe - xs + 1, 1) / ow
        for ph in range(oh):
            h0 = min(max(math.floor(ph * bh) + ys, 0), h)
            h1 = min(max(math.ceil((ph + 1) * bh) + ys, 0), h)
            for pw in range(ow):
                w0 = min(max(math.floor(pw * bw) + xs, 0), w)
                w1 = min(max(math.ceil((pw + 1) * bw) + xs, 0), w)
                for ch in range(c):
                    if h1 <= h0 or w1 <= w0:
                        res[k, ch, ph, pw] = 0.0
                    else:
                        res[k, ch, ph, pw] = max(x[int(b), ch, i, j] for i in range(h0, h1)
                                                 for j in range(w0, w1))
    return res


def random_rois(k, n, size):
    xy = rng.uniform(-2, size, (k, 2))
    wh = rng.uniform(0.2, size * 0.8, (k, 2))
    return np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + wh], 1)


# -------------------------------------------------------------- roi_align
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio,scale,out", [(-1, 1.0, 3), (2, 0.5, (2, 3)),
                                                      (0, 0.5, 2), (1, 2.0, 1)])
def test_roi_align_matches_the_loop_reference(aligned, sampling_ratio, scale, out, path):
    x = rng.standard_normal((2, 2, 7, 6))
    rois = random_rois(5, 2, 14 / scale if scale < 1 else 7)
    got = ops.roi_align(sd.tensor(x), sd.tensor(rois), out, scale, sampling_ratio, aligned)
    want = ref_roi_align(x, rois, out, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_gradient(aligned, path):
    rois = random_rois(3, 2, 5)
    rt = sd.tensor(rois)
    check_op(lambda x: ops.roi_align(x, rt, 2, 1.0, -1, aligned),
             [rng.standard_normal((2, 2, 5, 5))],
             lambda x: ref_roi_align(x, rois, 2, 1.0, -1, aligned))


def test_roi_align_hand_cases(path):
    x = sd.arange(1.0, 17.0, dtype=sd.float64).reshape(1, 1, 4, 4)  # x[i, j] = 4 i + j + 1
    one = lambda box, **kw: ops.roi_align(x, sd.tensor([[0.0, *box]]), 1, **kw).item()  # noqa: E731
    # aligned=False: a zero-size RoI is widened to 1x1 -> one sample at (1.5, 1.5)
    assert one([1.0, 1.0, 1.0, 1.0]) == (6 + 7 + 10 + 11) / 4
    # aligned=True: no widening, ceil(0) = 0 samples -> 0
    assert one([1.0, 1.0, 1.0, 1.0], aligned=True) == 0.0
    # aligned=True shifts by -0.5: a 2x2 box over cells 0..1 averages at (0.5, 0.5)
    assert one([0.0, 0.0, 2.0, 2.0], aligned=True, sampling_ratio=1) == (1 + 2 + 5 + 6) / 4
    assert one([0.0, 0.0, 2.0, 2.0], sampling_ratio=1) == 6.0  # unshifted: the cell (1, 1)
    # a sample within one cell outside the map is clamped to the border ...
    assert one([-1.0, -1.0, 0.0, 0.0], sampling_ratio=1) == 1.0  # sample at (-0.5, -0.5)
    # ... one further out contributes zero: samples at -2 and 0 on each axis, 1 of 4 inside
    assert one([-3.0, -3.0, 1.0, 1.0], sampling_ratio=2) == 1.0 / 4
    # sampling_ratio <= 0: ceil(roi / bin count) samples, here ceil(3 / 1) = 3 per axis
    # (on a map that is not linear, where sample counts change the average)
    x = x * x
    box = [0.0, 0.0, 3.0, 3.0]
    assert one(box, sampling_ratio=0) == one(box, sampling_ratio=-1) == \
        one(box, sampling_ratio=3) != one(box, sampling_ratio=2)


def test_roi_align_box_list_module_and_empty(path):
    x = rng.standard_normal((2, 3, 6, 6))
    b0, b1 = random_rois(2, 1, 6)[:, 1:], random_rois(3, 1, 6)[:, 1:]
    as_list = ops.roi_align(sd.tensor(x), [sd.tensor(b0), sd.tensor(b1)], 2, 1.0, 2)
    rois = np.concatenate([np.c_[np.zeros(2), b0], np.c_[np.ones(3), b1]])
    np.testing.assert_allclose(as_list.numpy(), ref_roi_align(x, rois, 2, 1.0, 2), atol=1e-12)
    m = ops.RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=False)
    assert "sampling_ratio=2" in repr(m)
    np.testing.assert_array_equal(m(sd.tensor(x), sd.tensor(rois)).numpy(), as_list.numpy())
    xt = sd.tensor(x, requires_grad=True)
    empty = ops.roi_align(xt, sd.zeros(0, 5, dtype=sd.float64), 3)
    assert empty.shape == (0, 3, 3, 3)
    empty.sum().backward()
    assert xt.grad.shape == x.shape and not xt.grad.numpy().any()


@pytest.mark.skipif(not jit.available(), reason="numba is not installed: no kernel to compare")
def test_roi_align_kernels_agree_with_the_reference_in_float32():
    # a detector's sizes: a channel-major map, as the convolution kernels leave it
    x = rng.standard_normal((3, 16, 12, 10)).astype(np.float32)
    x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    rois = random_rois(40, 3, 24).astype(np.float32)
    g = rng.standard_normal((40, 16, 7, 7)).astype(np.float32)
    runs = []
    for on in (True, False):
        with jit.use(on):
            xt = sd.tensor(x, requires_grad=True)
            out = ops.roi_align(xt, sd.tensor(rois), 7, 0.5, -1, True)
            out.backward(sd.tensor(g))
            runs.append((out.detach().numpy(), xt.grad.numpy()))
    (out_k, gx_k), (out_r, gx_r) = runs
    # each output and each gradient cell is a sum of products of nonnegative weights with
    # the map (or the output gradient): the two orders of summation differ by at most
    # (terms) * eps of the sum of the absolute products (Higham's bound, computed in float64)
    with jit.use(False):
        xa = sd.tensor(np.abs(x).astype(np.float64), requires_grad=True)
        abs_out = ops.roi_align(xa, sd.tensor(rois.astype(np.float64)), 7, 0.5, -1, True)
        abs_out.backward(sd.tensor(np.abs(g).astype(np.float64)))
    eps = np.finfo(np.float32).eps
    terms = 2 * (12 + 10) + 40 * 49  # a bin's rows and columns; for a cell, every RoI's bins
    assert np.all(np.abs(out_k - out_r) <= terms * eps * abs_out.detach().numpy())
    assert np.all(np.abs(gx_k - gx_r) <= terms * eps * xa.grad.numpy())


# -------------------------------------------------------------- roi_pool
@pytest.mark.parametrize("scale,out", [(1.0, 2), (0.5, (3, 2)), (0.25, 1)])
def test_roi_pool_matches_the_loop_reference(scale, out):
    x = rng.standard_normal((2, 2, 8, 7))
    rois = random_rois(6, 2, 8 / scale)
    rois[0, 1:] = [0.5 / scale, 1.5 / scale, 2.5 / scale, 4.5 / scale]  # .5 after scaling
    got = ops.roi_pool(sd.tensor(x), sd.tensor(rois), out, scale)
    np.testing.assert_allclose(got.numpy(), ref_roi_pool(x, rois, out, scale), atol=0)


def test_roi_pool_gradient():
    rois = random_rois(3, 2, 6)
    rt = sd.tensor(rois)
    check_op(lambda x: ops.roi_pool(x, rt, 2, 1.0), [rng.standard_normal((2, 2, 6, 6))],
             lambda x: ref_roi_pool(x, rois, 2, 1.0))


def test_roi_pool_hand_cases():
    x = sd.arange(16.0, dtype=sd.float64).reshape(1, 1, 4, 4)  # x[i, j] = 4 i + j
    # 0.5 and 2.5 round away from zero to 1 and 3 (NumPy's half-to-even gives 0 and 2)
    assert ops.roi_pool(x, sd.tensor([[0.0, 0.5, 0.5, 2.5, 2.5]]), 1).item() == 15.0
    assert ops.roi_pool(x, sd.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]), 1).item() == 5.0  # inclusive
    # a RoI entirely outside the map: every bin empty -> 0, even under negative values
    neg = sd.tensor(-np.ones((1, 1, 4, 4)), requires_grad=True)
    out = ops.roi_pool(neg, sd.tensor([[0.0, 6.0, 6.0, 8.0, 8.0]]), 2)
    assert out.detach().numpy().tolist() == [[[[0.0, 0.0], [0.0, 0.0]]]]
    out.sum().backward()
    assert not neg.grad.numpy().any()
    # ties: the gradient goes to the first maximum of the bin (row-major)
    flat = sd.ones(1, 1, 4, 4, dtype=sd.float64, requires_grad=True)
    ops.roi_pool(flat, sd.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]]), 2).sum().backward()
    want = np.zeros((4, 4))
    want[0, 0] = want[0, 2] = want[2, 0] = want[2, 2] = 1.0
    np.testing.assert_array_equal(flat.grad.numpy()[0, 0], want)


def test_roi_pool_module_and_list_form():
    x = rng.standard_normal((2, 1, 6, 6))
    m = ops.RoIPool(2, 0.5)
    assert "spatial_scale=0.5" in repr(m)
    boxes = [sd.tensor([[0.0, 0.0, 8.0, 8.0]]), sd.tensor([[2.0, 2.0, 10.0, 6.0]])]
    rois = np.array([[0, 0, 0, 8, 8], [1, 2, 2, 10, 6]], float)
    np.testing.assert_array_equal(m(sd.tensor(x), boxes).numpy(), ref_roi_pool(x, rois, 2, 0.5))


# -------------------------------------------------------------- errors
@pytest.mark.parametrize("op", [ops.roi_align, ops.roi_pool])
def test_roi_errors(op):
    x = sd.zeros(2, 1, 4, 4)
    name = op.__name__
    with pytest.raises(ValueError, match=rf"{name}: boxes must be a Tensor of shape \(K, 5\).*"
                                         r"got \(3, 4\)"):
        op(x, sd.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=rf"{name}: boxes\[1\] must be .*\(L, 4\), got \(2, 5\)"):
        op(x, [sd.zeros(1, 4), sd.zeros(2, 5)], 2)
    with pytest.raises(ValueError, match=rf"{name}: box 0 has batch index 2.0 but input has 2"):
        op(x, sd.tensor([[2.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=rf"{name}: input must be .*\(N, C, H, W\), got \(4, 4\)"):
        op(sd.zeros(4, 4), sd.zeros(0, 5), 2)
    with pytest.raises(ValueError, match=rf"{name}: output_size must be a positive int"):
        op(x, sd.zeros(0, 5), (2, 0))


@pytest.mark.torchvision
def test_torchvision_agreement():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed: roi_align "
                             "and roi_pool were checked against the loop references only")
    import torch
    x = rng.standard_normal((2, 3, 9, 8))
    rois = random_rois(8, 2, 16)
    for aligned in (False, True):
        for sr in (-1, 2):
            xs, xt = sd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            a = ops.roi_align(xs, sd.tensor(rois), (3, 2), 0.5, sr, aligned)
            b = tv.ops.roi_align(xt, torch.tensor(rois), (3, 2), 0.5, sr, aligned)
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)
            a.sum().backward()
            b.sum().backward()
            np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), atol=1e-6)
    xs, xt = sd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    a = ops.roi_pool(xs, sd.tensor(rois), 3, 0.5)
    b = tv.ops.roi_pool(xt, torch.tensor(rois), 3, 0.5)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_roi_pool_gradient_goes_to_the_first_maximum_under_many_ties():
    x = rng.integers(0, 3, (2, 3, 9, 8)).astype(np.float64)  # values 0..2: ties everywhere
    rois = random_rois(10, 2, 9)
    want = np.zeros_like(x)
    for b, x1, y1, x2, y2 in rois:  # scale 1, output 3: the loop reference's bins
        xs, ys, xe, ye = (round_half_away(v) for v in (x1, y1, x2, y2))
        bh, bw = max(ye - ys + 1, 1) / 3, max(xe - xs + 1, 1) / 3
        for ph in range(3):
            h0 = min(max(math.floor(ph * bh) + ys, 0), 9)
            h1 = min(max(math.ceil((ph + 1) * bh) + ys, 0), 9)
            for pw in range(3):
                w0 = min(max(math.floor(pw * bw) + xs, 0), 8)
                w1 = min(max(math.ceil((pw + 1) * bw) + xs, 0), 8)
                for c in range(3):
                    best = None
                    for i in range(h0, h1):
                        for j in range(w0, w1):
                            if best is None or x[int(b), c, i, j] > x[int(b), c, best[0], best[1]]:
                                best = (i, j)
                    if best is not None:
                        want[int(b), c, best[0], best[1]] += 1.0
    xt = sd.tensor(x, requires_grad=True)
    ops.roi_pool(xt, sd.tensor(rois), 3).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), want)
