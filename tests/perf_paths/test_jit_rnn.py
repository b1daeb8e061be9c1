"""The LSTM and GRU step kernels (``backend/jit/rnn.py``) against the plain NumPy gate
arithmetic they replace (``jit.use(False)``): outputs, final states and every gradient,
and the kernels' own ``tanh`` against ``np.tanh``."""
import numpy as np
import pytest

import shendu as sd
from shendu.backend import blas, jit
from shendu.nn.layers.rnn import GRU, LSTM

pytest.importorskip("numba")
# The layers take the kernels only while they are on; SHENDU_JIT=0 turns them off.
layers_use_kernels = pytest.mark.skipif(not jit.enabled(), reason="SHENDU_JIT=0")

TOL = {np.float32: 1e-6, np.float64: 1e-12}
# With MKL the LSTM's forward step takes MKL's vector tanh (its own kernel); without, the
# kernels' own tanh (SHENDU_MKL=0 runs this file on that one).
LSTM_FORWARD = "lstm_forward_step_vml" if blas.mkl_loaded() else "lstm_forward_step"
KERNELS = {"lstm": (LSTM_FORWARD, "lstm_backward_step"),
           "gru": ("gru_forward_step", "gru_backward_step")}

# (T, N, input, hidden, layers, bidirectional, batch_first, bias): batch 1, hidden sizes
# that are not multiples of 8 and that cross the kernels' 64-unit blocks, stacking, both
# directions, batch-first outputs (their gradients arrive transposed), no biases.
CASES = [
    (5, 1, 3, 7, 1, False, False, True),
    (4, 3, 5, 70, 1, False, False, True),
    (3, 2, 4, 131, 1, True, False, True),
    (4, 5, 6, 13, 2, True, False, True),
    (3, 4, 5, 9, 2, False, True, True),
    (4, 2, 3, 11, 1, True, True, False),
]


def _run(cls, case, dtype, with_state, seed=0):
    """Output, final states and the gradients of the input, initial states and parameters
    of a fixed random loss, on whichever path ``jit`` selects now."""
    t, n, i, h, layers, bidir, batch_first, bias = case
    rng = np.random.default_rng(seed)
    sd.manual_seed(seed)
    m = cls(i, h, num_layers=layers, bidirectional=bidir, batch_first=batch_first,
            bias=bias, dtype=sd.float32 if dtype == np.float32 else sd.float64)
    x = sd.tensor(rng.standard_normal((n, t, i) if batch_first else (t, n, i)).astype(dtype),
                  requires_grad=True)
    d = layers * (2 if bidir else 1)
    states = None
    if with_state:
        states = [sd.tensor(rng.standard_normal((d, n, h)).astype(dtype), requires_grad=True)
                  for _ in range(2 if cls is LSTM else 1)]
    out, hn = m(x, None if states is None else (tuple(states) if cls is LSTM else states[0]))
    finals = list(hn) if cls is LSTM else [hn]
    loss = sum((o * sd.tensor(rng.standard_normal(o.shape).astype(dtype))).sum()
               for o in [out] + finals)
    loss.backward()
    grads = [x.grad] + [s.grad for s in states or []] + [p.grad for p in m.parameters()]
    return [np.asarray(a.detach()) for a in [out] + finals + grads]


def _assert_close(got, want, dtype):
    tol = TOL[dtype]
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(np.abs(b).max(), 1),
                                   err_msg=f"array {k}")


@pytest.fixture
def spy(kernel_spy, monkeypatch):
    """The names of the rnn kernels called while the test runs. On several threads with
    MKL the LSTM's time loops run as one compiled call each (whether they do depends on
    the threads earlier tests left), which runs the step kernels from compiled code: a
    loop's call counts as its step kernel's."""
    calls = kernel_spy(*(name for names in KERNELS.values() for name in names))
    for loop, step in (("lstm_forward_loop", LSTM_FORWARD),
                       ("lstm_backward_loop", "lstm_backward_step")):
        def wrapper(*args, _loop=getattr(jit, loop), _step=step):
            calls.append(_step)
            return _loop(*args)
        monkeypatch.setattr(jit, loop, wrapper)
    return calls


@layers_use_kernels
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_kernels_match_plain_path(mode, case, dtype, with_state, spy):
    cls = LSTM if mode == "lstm" else GRU
    fast = _run(cls, case, dtype, with_state)
    assert set(spy) == set(KERNELS[mode])
    with jit.use(False):
        plain = _run(cls, case, dtype, with_state)
    _assert_close(fast, plain, dtype)


@layers_use_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_kernels_on_two_threads_match_plain_path(mode, dtype, kernel_spy):
    # On several threads with MKL, the LSTM's loops run as one compiled call each.
    if not jit.parallel():
        pytest.skip("the kernels run on one thread without MKL")
    loops = kernel_spy("lstm_forward_loop", "lstm_backward_loop")
    cls = LSTM if mode == "lstm" else GRU
    case = (6, 9, 5, 200, 1, True, False, True)
    before = jit.num_threads()
    jit.set_num_threads(2)
    try:
        fast = _run(cls, case, dtype, True)
        m = cls(5, 200, dtype=sd.float32 if dtype == np.float32 else sd.float64)
        x = sd.tensor(np.random.default_rng(1).standard_normal((4, 9, 5)).astype(dtype))
        with sd.no_grad():  # the forward loop on one step's scratch for BPTT's arrays
            fast_no_grad = m(x)
    finally:
        jit.set_num_threads(before)
    with jit.use(False):
        plain = _run(cls, case, dtype, True)
        plain_no_grad = m(x)
    _assert_close(fast, plain, dtype)
    flat = (lambda r: [r[0], *r[1]]) if mode == "lstm" else (lambda r: list(r))
    _assert_close([np.asarray(a) for a in flat(fast_no_grad)],
                  [np.asarray(a) for a in flat(plain_no_grad)], dtype)
    want = {"lstm_forward_loop", "lstm_backward_loop"} if mode == "lstm" else set()
    assert set(loops) == (want if blas.mkl_loaded() else set())


@layers_use_kernels
@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_grad_forward_matches_plain_path(mode, dtype, spy):
    m = (LSTM if mode == "lstm" else GRU)(4, 37, num_layers=2, bidirectional=True,
                                          dtype=sd.float32 if dtype == np.float32 else sd.float64)
    x = sd.tensor(np.random.default_rng(3).standard_normal((6, 2, 4)).astype(dtype))
    with sd.no_grad():
        fast = m(x)
        assert set(spy) == {KERNELS[mode][0]}
        with jit.use(False):
            plain = m(x)
    flat = (lambda r: [r[0], *r[1]]) if mode == "lstm" else (lambda r: list(r))
    _assert_close([np.asarray(a) for a in flat(fast)], [np.asarray(a) for a in flat(plain)],
                  dtype)


def _grads(m, x, forward_jit, backward_jit):
    for p in m.parameters():
        p.grad = None
    x.grad = None
    with jit.use(forward_jit):
        out, _ = m(x)
    with jit.use(backward_jit):
        (out * out).sum().backward()
    return [x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]


@layers_use_kernels
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_a_graph_recorded_on_one_path_backpropagates_on_the_other(cls):
    # The kernels keep what the NumPy steps keep (activations, BPTT coefficients, the GRU's
    # hidden products with their bias), so jit may be switched between the two passes.
    m = cls(5, 70, bidirectional=True, dtype=sd.float64)
    x = sd.tensor(np.random.default_rng(4).standard_normal((4, 3, 5)), requires_grad=True)
    want = _grads(m, x, False, False)
    for forward_jit, backward_jit in ((False, True), (True, False)):
        _assert_close(_grads(m, x, forward_jit, backward_jit), want, np.float64)


# ---------------------------------------------------------------------- tanh
def _ulps(got, x):
    """|got - tanh(x)| in units of the last place of ``got``'s dtype (reference computed
    in long double)."""
    ref = np.tanh(x.astype(np.longdouble))
    ulp = np.spacing(np.abs(ref).astype(x.dtype)).astype(np.longdouble)
    return np.abs((got.astype(np.longdouble) - ref) / ulp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_tanh_is_within_2_ulp_like_numpy(dtype):
    tiny = np.finfo(dtype).tiny
    mag = np.concatenate([np.geomspace(tiny, 25, 200_000), np.linspace(0, 25, 200_001)])
    x = np.concatenate([mag, -mag]).astype(dtype)
    got = np.empty_like(x)
    jit.tanh_array(x, got)
    assert _ulps(got, x).max() <= 2  # NumPy's tanh measured within 1.4 ulp here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_tanh_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 30.0, -30.0, 5e-39, -5e-39],
                 dtype=dtype)
    got = np.empty_like(x)
    jit.tanh_array(x, got)
    want = np.tanh(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


# ---------------------------------------------------------------------- VML forward step
needs_mkl = pytest.mark.skipif(not blas.mkl_loaded(), reason="MKL is not installed")


def _step_inputs(n, h, dtype, seed=6):
    rng = np.random.default_rng(seed)
    scale = np.full(4 * h, 0.5, dtype)
    scale[2 * h:3 * h] = 1
    shift = scale.copy()
    shift[2 * h:3 * h] = 0
    gates = (3 * rng.standard_normal((n, 4 * h))).astype(dtype)
    c_prev = rng.standard_normal((n, h)).astype(dtype)
    return gates, c_prev, scale, shift, -scale * scale


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,h,threads", [(1, 7, 2), (3, 70, 2), (2, 131, 3), (32, 256, 2),
                                         (5, 9, 1)])
def test_vml_forward_step_matches_the_own_tanh_step(dtype, n, h, threads):
    # fewer rows than threads splits rows into column chunks (four VML calls each)
    gates, c_prev, scale, shift, dscale = _step_inputs(n, h, dtype)
    outs = []
    bias = np.random.default_rng(7).standard_normal(4 * h).astype(dtype)
    for vml in (False, True):
        g = gates.copy()
        c, tc, hn, k = (np.full((n, h), np.nan, dtype) for _ in range(4))
        coef = np.full((n, 4 * h), np.nan, dtype)
        if vml:  # adds the bias and scales itself
            jit.lstm_forward_step_vml(g, bias, c_prev, c, tc, hn, coef, k, scale, shift,
                                      dscale, threads)
        else:
            g += bias
            g *= scale
            jit.lstm_forward_step(g, c_prev, c, tc, hn, coef, k, scale, shift, dscale)
        outs.append([g, c, tc, hn, coef, k])
    _assert_close(outs[1], outs[0], dtype)


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vml_forward_step_tanh_is_within_2_ulp(dtype):
    # the g gate's activation is tanh(pre) itself (scale 1, shift 0)
    h = 1000
    mag = np.geomspace(np.finfo(dtype).tiny, 25, 50 * h // 2)
    x = np.concatenate([mag, -mag]).astype(dtype).reshape(50, h)
    gates, c_prev, scale, shift, dscale = _step_inputs(50, h, dtype)
    gates[:, 2 * h:3 * h] = x
    c, tc, hn, k = (np.empty((50, h), dtype) for _ in range(4))
    coef = np.empty_like(gates)
    jit.lstm_forward_step_vml(gates, np.empty(0, dtype), c_prev, c, tc, hn, coef, k, scale,
                              shift, dscale, 2)
    assert _ulps(gates[:, 2 * h:3 * h], x).max() <= 2
    assert _ulps(tc, c).max() <= 2
