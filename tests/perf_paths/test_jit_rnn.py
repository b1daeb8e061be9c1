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


def _float32_tol(terms):
    """The paths sum the same products in other orders (a step's product: ``hidden +
    input`` terms per gate; a weight gradient: ``T * N`` terms per entry) and take tanh
    from other libraries (within 2 ulp each): each result may move by a few roundings of
    the largest term per term summed, relative to the largest value compared."""
    return 2 * terms * np.finfo(np.float32).eps
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


def _terms(case):
    """The most terms one of the layer's sums adds: a step's product (hidden + input) or a
    weight gradient's entry (T * N)."""
    t, n, i, h = case[:4]
    return max(h + i, t * n)


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


def _assert_close(got, want, dtype, terms=None):
    """Equal up to rounding: float64 at 1e-12 of the largest value; float32 at the bound
    of ``_float32_tol(terms)`` when the number of terms per sum is given."""
    tol = _float32_tol(terms) if dtype == np.float32 and terms else TOL[dtype]
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
    _assert_close(fast, plain, dtype, _terms(case))


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
    _assert_close(fast, plain, dtype, _terms(case))
    flat = (lambda r: [r[0], *r[1]]) if mode == "lstm" else (lambda r: list(r))
    _assert_close([np.asarray(a) for a in flat(fast_no_grad)],
                  [np.asarray(a) for a in flat(plain_no_grad)], dtype, _terms((4, 9, 5, 200)))
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
                  dtype, _terms((6, 2, 4, 37)) + 2 * 37)  # a second layer reads both directions


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
                                      dscale, threads, c_prev, np.empty(0, dtype))
        else:
            g += bias
            g *= scale
            jit.lstm_forward_step(g, c_prev, c, tc, hn, coef, k, scale, shift, dscale)
        outs.append([g, c, tc, hn, coef, k])
    # two tanh within 2 ulp each, then a few rounded products and sums per output
    _assert_close(outs[1], outs[0], dtype, 8)


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
                              shift, dscale, 2, c_prev, np.empty(0, dtype))
    assert _ulps(gates[:, 2 * h:3 * h], x).max() <= 2
    assert _ulps(tc, c).max() <= 2


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,threads", [(2, 2), (5, 2), (16, 2), (7, 3)])
def test_vml_forward_step_adds_each_threads_product(dtype, n, threads):
    # Given W_hh^T, each thread adds h_prev @ W_hh^T for its own rows: the step's results
    # are those of the step after the whole product, up to the rounding of that product
    # (each entry a float64-checked sum of h terms).
    h = 37
    gates, c_prev, scale, shift, dscale = _step_inputs(n, h, dtype)
    rng = np.random.default_rng(8)
    h_prev = rng.standard_normal((n, h)).astype(dtype)
    w_hh = (rng.standard_normal((4 * h, h)) / np.sqrt(h)).astype(dtype)
    bias = rng.standard_normal(4 * h).astype(dtype)
    outs = []
    for in_step in (False, True):
        g = gates.copy()
        if not in_step:
            g += (h_prev.astype(np.float64) @ w_hh.T.astype(np.float64)).astype(dtype)
        packed = np.ascontiguousarray(w_hh.T) if in_step else np.empty(0, dtype)
        c, tc, hn, k = (np.full((n, h), np.nan, dtype) for _ in range(4))
        coef = np.full((n, 4 * h), np.nan, dtype)
        jit.lstm_forward_step_vml(g, bias, c_prev, c, tc, hn, coef, k, scale, shift, dscale,
                                  threads, h_prev, packed)
        outs.append([g, c, tc, hn, coef, k])
    # the product's rounding (h terms) moves each pre-activation by at most
    # h * eps * |h_prev| @ |W^T|; every output is a 1-Lipschitz-ish function of those
    # (tanh, products with values below 1 and |c| below 4 here): a few times that
    eps = np.finfo(dtype).eps
    bound = 8 * h * eps * (np.abs(h_prev) @ np.abs(w_hh.T)).max()
    for k_, (a, b) in enumerate(zip(*outs)):
        np.testing.assert_allclose(a, b, rtol=0, atol=bound * max(1, np.abs(b).max()),
                                   err_msg=f"array {k_}")


# --------------------------------------------------- the LSTM's two-thread schedules
def _two_thread_case(dtype, bidirectional, bias, input_grad, monkeypatch, schedules=True):
    """Outputs and gradients of an LSTM (T=25, N=16: four chunks of 8 steps for the
    overlapped backward, 8 rows a thread for the forward's products) on two kernel
    threads, with ``backend.rnn``'s two-thread schedules on or off."""
    from shendu.backend import rnn as backend_rnn
    if not schedules:
        monkeypatch.setattr(backend_rnn, "_IN_STEP_MIN_ROWS", 10 ** 9)
        monkeypatch.setattr(backend_rnn, "lstm_backward_overlapped", lambda *a, **k: None)
    before = jit.num_threads()
    jit.set_num_threads(2)
    try:
        rng = np.random.default_rng(4)
        sd.manual_seed(4)
        m = LSTM(7, 24, bidirectional=bidirectional, bias=bias,
                 dtype=sd.float32 if dtype == np.float32 else sd.float64)
        x = sd.tensor(rng.standard_normal((25, 16, 7)).astype(dtype), requires_grad=input_grad)
        out, (h, c) = m(x)
        loss = sum((o * sd.tensor(rng.standard_normal(o.shape).astype(dtype))).sum()
                   for o in (out, h, c))
        loss.backward()
        grads = ([x.grad] if input_grad else []) + [p.grad for p in m.parameters()]
        return [np.asarray(a.detach()) for a in [out, h, c] + grads]
    finally:
        jit.set_num_threads(before)
        monkeypatch.undo()


@layers_use_kernels
@pytest.mark.parametrize("bidirectional,bias,input_grad",
                         [(False, True, True), (True, True, True), (False, False, False)])
def test_two_thread_schedules_match_plain_path(bidirectional, bias, input_grad,
                                               kernel_spy, monkeypatch):
    # In float64 the schedules change only the order of additions: rounding-level
    # differences from the NumPy path.
    if not (jit.parallel() and blas.mkl_loaded()):
        pytest.skip("the two-thread schedules need MKL and parallel kernels")
    from shendu.backend import rnn as backend_rnn
    monkeypatch.setattr(backend_rnn, "_IN_STEP", True)   # whatever this CPU would choose
    used = []
    for name in ("lstm_forward_loop", "lstm_backward_overlapped"):
        def wrapper(*args, _f=getattr(jit, name), _name=name):
            used.append((_name, args[-1].size > 0 if _name == "lstm_forward_loop" else True))
            return _f(*args)
        monkeypatch.setattr(jit, name, wrapper)
    fast = _two_thread_case(np.float64, bidirectional, bias, input_grad, monkeypatch)
    directions = 2 if bidirectional else 1
    assert used.count(("lstm_forward_loop", True)) == directions  # rows per thread
    assert used.count(("lstm_backward_overlapped", True)) == directions
    with jit.use(False):
        plain = _two_thread_case(np.float64, bidirectional, bias, input_grad, monkeypatch)
    _assert_close(fast, plain, np.float64)
    assert backend_rnn._overlap_split(4, 7, 24, True) in range(1, 4)


@layers_use_kernels
def test_two_thread_schedules_float32_match_the_one_region_loops(monkeypatch):
    # The same float32 sums in another order (T*N = 400 terms at most per weight
    # gradient entry): within 400 float32 roundings of the largest entry.
    if not (jit.parallel() and blas.mkl_loaded()):
        pytest.skip("the two-thread schedules need MKL and parallel kernels")
    fast = _two_thread_case(np.float32, True, True, True, monkeypatch)
    old = _two_thread_case(np.float32, True, True, True, monkeypatch, schedules=False)
    for k, (a, b) in enumerate(zip(fast, old)):
        tol = 400 * np.finfo(np.float32).eps * max(np.abs(b).max(), 1)
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=f"array {k}")


@layers_use_kernels
def test_overlapped_backward_when_the_second_thread_gives_up(monkeypatch):
    # With no patience the second thread leaves its chunks to the caller, which
    # computes them after the kernel: the same gradients.
    if not (jit.parallel() and blas.mkl_loaded()):
        pytest.skip("the two-thread schedules need MKL and parallel kernels")
    from shendu.backend import rnn as backend_rnn
    want = _two_thread_case(np.float64, False, True, True, monkeypatch)
    monkeypatch.setattr(backend_rnn, "_PATIENCE", 0)
    got = _two_thread_case(np.float64, False, True, True, monkeypatch)
    _assert_close(got, want, np.float64)
